"""The run store on SQLite (always) and PostgreSQL (when PATHWAYS_TEST_PG_URL is set)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text

from pathways.errors import InputError
from pathways.plan import SitePlan, baseline_plan
from pathways.scenario import Capacity, load_scenario, with_changes
from pathways.store import STATUS_FAILED, STATUS_OK, RunStore, _sqlite_on_connect, data_version

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"
PG_URL = os.environ.get("PATHWAYS_TEST_PG_URL")


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(SUSSEX)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request, tmp_path):
    """A fresh store: a SQLite file, or a private schema in the test PostgreSQL database."""
    if request.param == "sqlite":
        s = RunStore(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        s.close()
        return
    if not PG_URL:
        pytest.skip("PostgreSQL store tests need PATHWAYS_TEST_PG_URL (set by .ci/run)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    s = RunStore(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    yield s
    s.close()
    with admin.begin() as conn:
        conn.execute(text(f"drop schema {schema} cascade"))
    admin.dispose()


def a_plan(scenario, beds: int = 50):
    plan = baseline_plan(scenario)
    first = plan.sites[0]
    sites = (SitePlan(site_id=first.site_id, capacity=Capacity(inpatient_beds=beds)),)
    return plan.model_copy(update={"name": "test plan", "sites": sites + plan.sites[1:]})


# --------------------------------------------------------------------------- scenarios


def test_scenario_round_trip(store, scenario):
    store.save_scenario("sussex base", scenario, user="planner")
    loaded = store.load_scenario("sussex base")
    assert loaded == scenario
    assert loaded.fingerprint() == scenario.fingerprint()
    [row] = store.list_scenarios()
    assert row["name"] == "sussex base"
    assert row["fingerprint"] == scenario.fingerprint()
    assert row["footprint"] == "E54000053"
    assert row["user"] == "planner"
    assert row["created_at"].endswith("+00:00")


def test_scenario_overwrite_and_unique_names(store, scenario):
    store.save_scenario("s", scenario)
    grown = with_changes(scenario, {"demand.growth_factor": 1.2})
    with pytest.raises(InputError, match="already exists"):
        store.save_scenario("s", grown, overwrite=False)
    assert store.load_scenario("s").demand.growth_factor == 1.0
    store.save_scenario("s", grown)  # overwrite is the default
    assert store.load_scenario("s").demand.growth_factor == 1.2
    assert [r["name"] for r in store.list_scenarios()] == ["s"]


def test_delete_scenario(store, scenario):
    store.save_scenario("a", scenario)
    store.save_scenario("b", scenario)
    store.delete_scenario("a")
    assert [r["name"] for r in store.list_scenarios()] == ["b"]
    with pytest.raises(InputError, match="no scenario named 'a'"):
        store.load_scenario("a")
    with pytest.raises(InputError, match="no scenario named 'a'"):
        store.delete_scenario("a")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "required"),
        ("   ", "required"),
        ("x" * 101, "at most 100 characters"),
        ("tab\there", "control characters"),
        (42, "expected text"),
    ],
)
def test_bad_names(store, scenario, name, message):
    with pytest.raises(InputError, match=message) as info:
        store.save_scenario(name, scenario)
    assert info.value.problems[0].field == "name"
    with pytest.raises(InputError, match=message):
        store.save_plan(name, "s", baseline_plan(scenario))
    assert store.list_scenarios() == []
    assert store.list_plans() == []


def test_longest_name_is_accepted(store, scenario):
    store.save_scenario("y" * 100, scenario)
    assert store.load_scenario("y" * 100) == scenario


# --------------------------------------------------------------------------- plans


def test_plan_round_trip_with_scorecard(store, scenario):
    plan = a_plan(scenario)
    card = {"kpis": {"oap_bed_days_per_year": 1234.5, "gap": float("nan")}, "plan": "test plan"}
    store.save_plan("plan 1", "sussex", plan, scorecard=card)
    loaded, loaded_card = store.load_plan("plan 1")
    assert loaded == plan
    assert loaded.capacity(plan.sites[0].site_id).inpatient_beds == 50
    assert loaded_card["kpis"]["oap_bed_days_per_year"] == 1234.5
    assert math.isnan(loaded_card["kpis"]["gap"])
    store.save_plan("plan 2", "other", baseline_plan(scenario))
    _, no_card = store.load_plan("plan 2")
    assert no_card is None
    assert [p["name"] for p in store.list_plans()] == ["plan 1", "plan 2"]
    [only] = store.list_plans("sussex")
    assert only["name"] == "plan 1" and only["has_scorecard"] is True
    assert store.list_plans("nobody") == []


def test_plan_unique_names_and_delete(store, scenario):
    store.save_plan("p", "s", a_plan(scenario, 40))
    with pytest.raises(InputError, match="already exists"):
        store.save_plan("p", "s", a_plan(scenario, 60), overwrite=False)
    assert store.load_plan("p")[0].capacity(scenario.sites[0].site_id).inpatient_beds == 40
    store.save_plan("p", "s", a_plan(scenario, 60))
    assert store.load_plan("p")[0].capacity(scenario.sites[0].site_id).inpatient_beds == 60
    store.delete_plan("p")
    assert store.list_plans() == []
    with pytest.raises(InputError, match="no plan named 'p'"):
        store.load_plan("p")
    with pytest.raises(InputError, match="no plan named 'p'"):
        store.delete_plan("p")


def test_deleting_a_scenario_with_plans(store, scenario):
    store.save_scenario("s", scenario)
    store.save_plan("p", "s", baseline_plan(scenario))
    with pytest.raises(InputError, match=r"still has saved plans \['p'\]"):
        store.delete_scenario("s")
    assert store.load_scenario("s") == scenario
    store.delete_scenario("s", delete_plans=True)
    assert store.list_scenarios() == [] and store.list_plans() == []


# --------------------------------------------------------------------------- batches and runs


def test_same_spec_same_batch(store):
    a = store.start_batch("name: a\n", name="a")
    assert store.start_batch("name: a\n", name="a") == a
    b = store.start_batch("name: b\n", name="b")
    assert b != a
    assert store.start_batch("anything", spec_hash="h1") == store.start_batch(
        "other", spec_hash="h1"
    )
    assert store.batch_spec(a) == "name: a\n"
    assert [x["id"] for x in store.list_batches()][:2] == [a, b]


def record(store, batch, case, status=STATUS_OK, value=1.0, **kw):
    store.record_run(
        batch,
        case,
        inputs={"footprint": "E54000053", "demand.growth_factor": value},
        status=status,
        kpis={"oap_bed_days_per_year": 100.0 * value} if status == STATUS_OK else None,
        error=None if status == STATUS_OK else "ValueError: boom",
        seed=7,
        **kw,
    )


def test_record_and_resume_bookkeeping(store):
    batch = store.start_batch("spec")
    other = store.start_batch("other spec")
    record(store, batch, "c1", value=1.0)
    record(store, batch, "c2", value=1.1)
    record(store, batch, "c3", status=STATUS_FAILED)
    record(store, other, "c1", value=2.0)
    assert store.finished_cases(batch) == {"c1", "c2", "c3"}
    assert store.finished_cases(batch, [STATUS_OK]) == {"c1", "c2"}
    assert store.finished_cases(batch, [STATUS_FAILED]) == {"c3"}
    assert store.finished_cases(other) == {"c1"}

    # Recording a case again replaces it (a retried failure).
    record(store, batch, "c3", value=1.2)
    assert store.finished_cases(batch, [STATUS_FAILED]) == set()
    frame = store.runs_frame(batch)
    assert list(frame["case_id"]) == ["c1", "c2", "c3"]
    assert list(frame["demand.growth_factor"]) == [1.0, 1.1, 1.2]
    assert frame["oap_bed_days_per_year"].tolist() == pytest.approx([100.0, 110.0, 120.0])
    assert set(frame["seed"]) == {7}
    assert set(frame["data_version"]) == {data_version()}
    assert frame["finished_at"].notna().all()

    assert store.delete_runs(batch, ["c2"]) == 1
    assert store.finished_cases(batch) == {"c1", "c3"}
    assert store.finished_cases(other) == {"c1"}


class Boom(RuntimeError):
    pass


def test_failed_write_keeps_earlier_rows(store):
    batch = store.start_batch("spec")
    record(store, batch, "c1", value=1.0)

    def fail_on_insert(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO RUNS"):
            raise Boom("disk full")

    event.listen(store.engine, "before_cursor_execute", fail_on_insert)
    try:
        # Replacing c1 deletes the old row first; the insert fails, so the delete is undone.
        with pytest.raises(Boom):
            record(store, batch, "c1", value=5.0)
        with pytest.raises(Boom):
            record(store, batch, "c2", value=1.1)
    finally:
        event.remove(store.engine, "before_cursor_execute", fail_on_insert)
    assert store.finished_cases(batch) == {"c1"}
    frame = store.runs_frame(batch)
    assert frame["demand.growth_factor"].tolist() == [1.0]
    assert frame["oap_bed_days_per_year"].tolist() == [100.0]
    record(store, batch, "c2", value=1.1)  # the store still works
    assert store.finished_cases(batch) == {"c1", "c2"}


def test_runs_frame_of_an_empty_batch(store):
    batch = store.start_batch("spec")
    assert store.runs_frame(batch).empty
    assert store.finished_cases(batch) == set()


def test_run_plans(store, scenario):
    batch = store.start_batch("spec")
    plan = a_plan(scenario).model_dump(mode="json")
    record(store, batch, "c1", plan=plan)
    record(store, batch, "c2")
    assert store.run_plans(batch) == {"c1": json.loads(json.dumps(plan))}


def test_provenance(store):
    info = store.provenance()
    assert info["data_version"] == data_version() != "unknown"
    assert set(info) >= {"package_version", "data_version", "user", "host", "store_url"}
    assert "pathways:pathways@" not in info["store_url"]  # passwords are hidden


# --------------------------------------------------------------------------- SQLite specifics


def test_default_url_from_environment(tmp_path, monkeypatch):
    target = tmp_path / "env" / "runs.db"
    monkeypatch.setenv("PATHWAYS_STORE_URL", f"sqlite:///{target}")
    with RunStore() as s:
        s.start_batch("x")
    assert target.exists()


def test_default_url_in_home(tmp_path, monkeypatch):
    monkeypatch.delenv("PATHWAYS_STORE_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with RunStore() as s:
        assert s.is_sqlite
    assert (tmp_path / ".pathways" / "store.db").exists()


def test_sqlite_uses_wal(tmp_path):
    with RunStore(tmp_path / "s.db") as s, s.engine.connect() as conn:
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("pragma busy_timeout").scalar() >= 1000


WRITER = """
import sys
from pathways.store import RunStore
store = RunStore(sys.argv[1])
batch = store.start_batch("shared spec")
for i in range(40):
    store.record_run(batch, f"{sys.argv[2]}-{i}", inputs={"i": i}, status="ok", kpis={"k": i})
"""


def test_several_processes_write_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, name], stderr=subprocess.PIPE)
        for name in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with RunStore(url) as s:
        [batch] = s.list_batches()
        assert batch["runs"] == 80
        assert len(s.finished_cases(batch["id"])) == 80


def test_connections_opening_a_new_file_at_once_all_get_wal(tmp_path):
    # Switching a new file to WAL takes an exclusive lock; two connections trying at once
    # both hold a shared lock and SQLite fails one with "database is locked" without
    # waiting (it would deadlock). Opening must wait and retry instead.
    failures: list[str] = []
    for round_ in range(60):
        path = tmp_path / f"new-{round_}.db"
        with contextlib.closing(sqlite3.connect(path)) as first:
            first.execute("create table t (x)")
            first.commit()
        start = threading.Barrier(4)

        def open_one(path=path, start=start):
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            try:
                start.wait()
                _sqlite_on_connect(conn, None, 30_000)
                mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
                if mode != "wal":
                    failures.append(f"{path.name}: journal mode {mode}")
            except sqlite3.OperationalError as err:
                failures.append(f"{path.name}: {err}")
            finally:
                conn.close()

        threads = [threading.Thread(target=open_one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


# --------------------------------------------------------------------------- damaged or locked files


def test_a_file_that_is_not_a_database_is_explained_on_opening(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(b"this is not SQLite\x00" + bytes(range(256)) * 16)
    with pytest.raises(InputError) as info:
        RunStore(path)
    message = str(info.value)
    assert f"the run store at {path} is not a readable database" in message
    assert "file is not a database" in message  # what SQLite said
    assert "Traceback" not in message


def test_a_store_damaged_after_opening_is_explained_on_the_next_call(tmp_path, scenario):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    store.save_plan("kept", "base", a_plan(scenario))
    store.close()  # the next call opens a new connection
    for name in ("runs.sqlite-wal", "runs.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    path.write_bytes(b"\x00garbage" * 4096)
    with pytest.raises(InputError, match="is not a readable database"):
        store.list_plans()
    with pytest.raises(InputError, match="is not a readable database"):
        store.save_plan("other", "base", a_plan(scenario))


def _hold_exclusive_lock(path: Path, *, wal: bool):
    """A second program's connection holding SQLite's exclusive lock on ``path``."""
    import sqlite3

    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    if wal:
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("create table if not exists other_program (x)")
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("insert into other_program values (1)")
    return conn


def test_a_store_locked_by_another_program_says_so_on_opening(tmp_path):
    path = tmp_path / "runs.sqlite"
    other = _hold_exclusive_lock(path, wal=False)  # not yet a store: opening must write
    try:
        with pytest.raises(InputError) as info:
            RunStore(path, busy_timeout_s=0.2)
        assert f"the run store at {path} is locked by another program; try again" in str(info.value)
    finally:
        other.rollback()
        other.close()
    with RunStore(path, busy_timeout_s=0.2) as store:  # once released, it opens
        assert store.list_plans() == []


def test_a_store_locked_by_another_program_says_so_on_saving(tmp_path, scenario):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path, busy_timeout_s=0.2)
    store.save_plan("kept", "base", a_plan(scenario))
    other = _hold_exclusive_lock(path, wal=True)
    try:
        with pytest.raises(InputError, match="is locked by another program; try again"):
            store.save_plan("blocked", "base", a_plan(scenario, beds=60))
        with pytest.raises(InputError, match="is locked by another program"):
            store.record_run(store.start_batch("spec"), "c1", inputs={}, status=STATUS_OK)
    finally:
        other.rollback()
        other.close()
    # Nothing half-written: the earlier save is intact and the blocked one can be retried.
    assert [p["name"] for p in store.list_plans()] == ["kept"]
    store.save_plan("blocked", "base", a_plan(scenario, beds=60))
    assert store.load_plan("blocked")[0].sites[0].capacity.inpatient_beds == 60
    store.close()


def test_an_unreadable_recorded_plan_is_left_out(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    batch = store.start_batch("spec")
    store.record_run(batch, "good", inputs={}, status=STATUS_OK, plan={"name": "p"})
    store.record_run(batch, "cut", inputs={}, status=STATUS_OK, plan={"name": "q"})
    with store.engine.begin() as conn:
        conn.execute(text("update runs set plan = '{\"name\": \"q' where case_id = 'cut'"))
    assert store.run_plans(batch) == {"good": {"name": "p"}}
    store.close()
