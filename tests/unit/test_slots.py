"""Solver slots: at most N background jobs at once, first come first served, and a
job that dies never keeps its slot. Every wait here waits on a condition."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dashapp import slots
from pathways.errors import InputError

BOUND_S = 120  # generous: a busy machine may be slow, never wrong

HOLDER = """
import sys, time
from pathlib import Path
from dashapp.slots import JobSlots
folder, release = sys.argv[1], Path(sys.argv[2])
with JobSlots(folder, 1).hold():
    print("holding", flush=True)
    while not release.exists():
        time.sleep(0.05)
"""


def _until(condition, what: str) -> None:
    end = time.monotonic() + BOUND_S
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


@pytest.fixture
def holder(tmp_path):
    """A process holding the only slot until its release file appears."""
    release = tmp_path / "release"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "slots"), str(release)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "holding"
    yield proc, release
    release.touch()
    proc.wait(BOUND_S)


def test_a_job_waits_for_a_free_slot_and_says_where_it_stands(tmp_path, holder, monkeypatch):
    monkeypatch.setattr(slots, "POLL_S", 0.02)
    proc, release = holder
    s = slots.JobSlots(tmp_path / "slots", 1)
    assert s.busy() == 1
    seen: list[tuple[int, int]] = []
    ran = threading.Event()

    def job():
        with s.hold(lambda pos, n: seen.append((pos, n))):
            ran.set()

    t = threading.Thread(target=job)
    t.start()
    _until(lambda: seen, "the job to report that it waits")
    assert not ran.is_set() and seen[0] == (1, 1)
    release.touch()
    t.join(BOUND_S)
    assert ran.is_set() and s.busy() == 0 and s.waiting() == []


def test_waiting_jobs_go_first_come_first_served(tmp_path, holder, monkeypatch):
    monkeypatch.setattr(slots, "POLL_S", 0.02)
    proc, release = holder
    s = slots.JobSlots(tmp_path / "slots", 1)
    order: list[str] = []
    positions: dict[str, list[int]] = {"first": [], "second": []}
    go_on = threading.Event()

    def job(name):
        with s.hold(lambda pos, n: positions[name].append(pos)):
            order.append(name)
            go_on.wait(BOUND_S)

    first = threading.Thread(target=job, args=("first",))
    first.start()
    _until(lambda: positions["first"], "the first job to queue")
    second = threading.Thread(target=job, args=("second",))
    second.start()
    _until(lambda: positions["second"], "the second job to queue")
    assert positions["second"][-1] == 2
    release.touch()
    _until(lambda: order, "the first job to start")
    assert order == ["first"]
    go_on.set()
    first.join(BOUND_S)
    second.join(BOUND_S)
    assert order == ["first", "second"]


def test_a_killed_job_frees_its_slot_and_its_place_in_the_queue(tmp_path):
    folder = tmp_path / "slots"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), str(tmp_path / "never")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "holding"
    s = slots.JobSlots(folder, 1)
    assert s.busy() == 1
    # a ticket left by a process that has gone does not hold up the queue
    (folder / "queue" / "00000000000000000001-999999-1.000").touch()
    proc.kill()
    proc.wait(BOUND_S)
    _until(lambda: s.busy() == 0, "the dead job's slot to be free")
    with s.hold():
        assert s.busy() == 1
    assert s.waiting() == [] and not any(Path(folder, "queue").iterdir())


def test_more_slots_run_side_by_side(tmp_path):
    s = slots.JobSlots(tmp_path / "slots", 2)
    with s.hold(), s.hold():
        assert s.busy() == 2
    assert s.busy() == 0


@pytest.mark.parametrize("raw", ["0", "-1", "65", "two", "1.5", "nan"])
def test_a_wrong_max_jobs_setting_is_refused_in_words(monkeypatch, raw):
    monkeypatch.setenv(slots.ENV_MAX_JOBS, raw)
    with pytest.raises(InputError, match="PATHWAYS_MAX_JOBS.*from 1 to 64"):
        slots.max_jobs()


def test_max_jobs_defaults_to_one_fewer_than_the_processors(monkeypatch):
    monkeypatch.delenv(slots.ENV_MAX_JOBS, raising=False)
    assert slots.max_jobs() == slots.default_slots() >= 1
    monkeypatch.setenv(slots.ENV_MAX_JOBS, " 3 ")
    assert slots.max_jobs() == 3


def test_the_waiting_message():
    assert slots.waiting_text(1, 1) == (
        "waiting for a free solver: 1 optimisation is running (next in line)"
    )
    assert slots.waiting_text(3, 2) == (
        "waiting for a free solver: 2 optimisations are running (2 ahead of this one)"
    )
