"""Crashes lose nothing: batch runs and the run store survive SIGKILL.

Each test kills real processes at points chosen by conditions (cases recorded, saves
acknowledged), never by the clock, and waits for what it checks with generous bounds.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from pathways.batch import expand_cases, load_batch_spec, run_batch
from pathways.store import RunStore

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"
WAIT_S = 180  # bound for anything a busy machine may be slow at (starting Python, say)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="kills processes the POSIX way"
)


def wait_until(condition: Callable[[], object], what: str, bound_s: float = WAIT_S) -> object:
    """Poll ``condition`` until it is true (returns its value) or fail after ``bound_s``."""
    deadline = time.monotonic() + bound_s
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def alive(pids: list[int]) -> list[int]:
    """The processes of ``pids`` still running (a zombie has stopped: it only awaits reaping)."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def in_session(sid: int) -> list[int]:
    """Every process of session ``sid`` (the killed command and anything it started)."""
    pids = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid:
                pids.append(p.pid)
        except (ProcessLookupError, PermissionError):
            pass
    return alive(pids)


def stop_session(proc: subprocess.Popen) -> None:
    """Test clean-up: kill what is left of a session this test started."""
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=WAIT_S)
    for pid in in_session(proc.pid):
        os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- batch killed


BATCH = {
    "name": "killed",
    "base": str(SUSSEX),
    "run": "evaluate",
    "grid": {"demand.growth_factor": [1.0, 1.2]},
    "monte_carlo": {
        "samples": 12,
        "seed": 5,
        "parameters": {
            "queues.inpatient_los_days": {"dist": "lognormal", "median": 33, "sigma": 0.15,
                                          "unit": "days"},
        },
    },
}  # fmt: skip


# Runs a batch through the Python API and, once it has recorded STOP_AFTER cases, stays
# part way (in its progress callback, so it records nothing more) until it is killed.
BATCH_RUNNER = r"""
import sys, threading
from pathways.batch import run_batch

spec, out, stop_after = sys.argv[1], sys.argv[2], int(sys.argv[3])

def progress(p):
    if p.done - p.skipped >= stop_after:
        print("recorded", p.done - p.skipped, flush=True)
        threading.Event().wait()

run_batch(spec, out, workers=2, progress=progress)
"""


def recorded_runs(db: Path) -> pd.DataFrame:
    with sqlite3.connect(db, timeout=WAIT_S) as conn:
        return pd.read_sql("select case_id, kpis, finished_at from runs order by case_id", conn)


def test_batch_killed_mid_run_leaves_no_worker_and_resumes_every_case_once(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(BATCH, sort_keys=False))
    out = tmp_path / "out"
    db = out / "runs.db"
    n_cases = len(expand_cases(load_batch_spec(spec)))
    proc = subprocess.Popen(
        [sys.executable, "-c", BATCH_RUNNER, str(spec), str(out), "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        start_new_session=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline()  # blocks until the batch has recorded a chunk
        assert line.startswith("recorded"), proc.stderr.read()
        before = recorded_runs(db)
        assert 0 < len(before) < n_cases
        workers = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert alive(workers), "the batch's pool workers should be running"

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
        wait_until(lambda: not in_session(proc.pid), "every worker to stop", bound_s=60)
        assert not alive(workers)
    finally:
        stop_session(proc)

    resumed = run_batch(spec, out, workers=2)
    assert (resumed.skipped, resumed.ran) == (len(before), n_cases - len(before))
    results = pd.read_parquet(out / "results.parquet")
    expected = {c.case_id for c in expand_cases(load_batch_spec(spec))}
    assert len(results) == n_cases and set(results["case_id"]) == expected
    assert not results["case_id"].duplicated().any()
    assert (results["status"] == "ok").all()
    # Cases recorded before the kill are kept as they were, not run again.
    after = recorded_runs(db).set_index("case_id")
    assert len(after) == n_cases
    kept = before.set_index("case_id")
    pd.testing.assert_frame_equal(after.loc[kept.index], kept)
    print(
        f"\nbatch of {n_cases} cases killed after {len(before)} were recorded "
        f"({len(workers)} child processes); resumed: {len(results)} rows, "
        f"{int(results['case_id'].duplicated().sum())} duplicates, 0 processes left"
    )


# --------------------------------------------------------------------------- store writers killed


SAVER = r"""
import sys
from pathways.plan import SitePlan, baseline_plan
from pathways.scenario import Capacity, load_scenario
from pathways.store import RunStore

store_path, who, sussex = sys.argv[1], sys.argv[2], sys.argv[3]
base = baseline_plan(load_scenario(sussex))
first = base.sites[0]
store = RunStore(store_path)
batch = store.start_batch("concurrent savers")
print("ready", flush=True)
i = 0
while True:
    name = f"{who}-{i}"
    beds = 10 + i % 90
    sites = (SitePlan(site_id=first.site_id, capacity=Capacity(inpatient_beds=beds)),)
    plan = base.model_copy(update={"name": name, "sites": sites + base.sites[1:]})
    store.save_plan(name, "base", plan)
    print("plan", name, flush=True)
    store.record_run(batch, name, inputs={"beds": beds}, status="ok", kpis={"beds": beds})
    print("run", name, flush=True)
    i += 1
"""


class Saver:
    """A process saving plans and batch cases to one store, and what it acknowledged."""

    def __init__(self, store: Path, who: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(store), who, str(SUSSEX)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.endswith("\n"):  # a whole line: printed after the save returned
                self.lines.append(line.split())

    def acknowledged(self, kind: str) -> list[str]:
        return [w[1] for w in list(self.lines) if w[0] == kind]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=WAIT_S)
        self.reader.join(timeout=WAIT_S)


N_SAVERS = 6


def beds_of(name: str) -> int:
    return 10 + int(name.rsplit("-", 1)[1]) % 90


def test_processes_killed_while_saving_lose_no_acknowledged_save(tmp_path):
    store_path = tmp_path / "store.db"
    rng = random.Random(20240601)
    savers: list[Saver] = []
    try:
        savers = [Saver(store_path, f"w{k}") for k in range(N_SAVERS)]
        for s in savers:  # each is killed after a random number of its own saves
            target = rng.randint(3, 40)
            wait_until(
                lambda s=s, t=target: len(s.acknowledged("plan")) >= t or s.proc.poll() is not None,
                f"{target} saves",
            )
            assert s.proc.poll() is None, s.proc.stderr.read()
            s.kill()
    finally:
        for s in savers:
            if s.proc.poll() is None:
                s.kill()

    with sqlite3.connect(store_path) as conn:
        assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    with RunStore(store_path) as store:
        listed = [p["name"] for p in store.list_plans()]
        batch = store.start_batch("concurrent savers")
        runs = store.runs_frame(batch).set_index("case_id")
        acked_plans = [n for s in savers for n in s.acknowledged("plan")]
        acked_runs = [n for s in savers for n in s.acknowledged("run")]
        assert len(acked_plans) >= N_SAVERS * 3
        assert len(listed) == len(set(listed))  # nothing saved twice
        assert set(acked_plans) <= set(listed)  # nothing acknowledged is lost
        # At most the save each process was in when killed is there unacknowledged.
        assert len(set(listed) - set(acked_plans)) <= len(savers)
        for name in acked_plans:  # and every one reads back whole
            plan, _ = store.load_plan(name)
            assert plan.name == name
            assert plan.sites[0].capacity.inpatient_beds == beds_of(name)
        assert not runs.index.duplicated().any()
        assert set(acked_runs) <= set(runs.index)
        assert all(runs.loc[n, "beds"] == beds_of(n) for n in acked_runs)
    print(
        f"\n{len(savers)} kills, {len(acked_plans)} acknowledged plan saves and "
        f"{len(acked_runs)} acknowledged runs; {len(set(acked_plans) - set(listed))} lost, "
        f"{len(listed) - len(set(listed))} duplicated"
    )
