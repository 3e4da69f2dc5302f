"""A real Dask cluster for the batch tests: a scheduler and two workers as separate processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):  # workers first, then the scheduler
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory) -> Iterator[str]:
    """Address of a Dask scheduler on 127.0.0.1 with two single-threaded workers."""
    pytest.importorskip("distributed")
    dask = shutil.which("dask") or shutil.which("dask", path=str(Path(sys.executable).parent))
    if dask is None:
        pytest.skip("the 'dask' command is not installed")
    logs = tmp_path_factory.mktemp("dask")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                 "--no-dashboard"],
                stdout=subprocess.DEVNULL, stderr=open(logs / "scheduler.log", "w"),  # noqa: SIM115
                cwd=REPO, env=env,
            )
        )  # fmt: skip
        for i in range(2):
            procs.append(
                subprocess.Popen(
                    [dask, "worker", address, "--nthreads", "1", "--no-nanny",
                     "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{i}"],
                    stdout=subprocess.DEVNULL, stderr=open(logs / f"worker{i}.log", "w"),  # noqa: SIM115
                    cwd=REPO, env=env,
                )
            )  # fmt: skip
        from distributed import Client

        deadline = time.monotonic() + 90
        while True:
            try:
                with Client(address, timeout="5s") as client:
                    client.wait_for_workers(2, timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                    raise
                time.sleep(0.5)
        yield address
    finally:
        _stop(procs)
