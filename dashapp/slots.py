"""At most a few heavy jobs at once, however many people press Optimise.

An optimisation or a budget frontier keeps a processor busy for its whole time limit
and takes about half a gigabyte. A shared app on a small server would grind to a halt
if every request started one at once, and every page would wait behind them. So each
background job first takes one of ``PATHWAYS_MAX_JOBS`` solver slots (default: one
fewer than the computer's processors, at least one) and waits its turn in a first-come
queue when all are taken, telling its page where it stands.

A slot is an exclusive lock on a file under the app's cache folder (``slots/``), so it
holds across the server's threads, its job processes and several server processes
sharing one cache folder. The operating system drops the lock when its process ends,
so a cancelled or crashed job never keeps a slot. A waiting job holds a ticket in
``slots/queue/`` named by when it asked; tickets of processes that have gone are
ignored and removed.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pathways.errors import InputError, Problem

ENV_MAX_JOBS = "PATHWAYS_MAX_JOBS"
#: The slots' folder under the app's cache folder.
SLOTS_DIR = "slots"
#: The most slots anyone may configure (each job is one busy processor).
MAX_SLOTS = 64
#: How often a queued job checks whether its turn has come, in seconds.
POLL_S = 0.5
#: Niceness of a job's own process on Unix (higher is gentler): pages stay responsive.
JOB_NICENESS = 10

try:  # Unix
    import fcntl

    def _lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True

except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True


def default_slots() -> int:
    """One fewer than the processors this process may use, at least one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus - 1)


def max_jobs() -> int:
    """Solver slots from ``PATHWAYS_MAX_JOBS`` (checked), else :func:`default_slots`."""
    raw = (os.environ.get(ENV_MAX_JOBS) or "").strip()
    if not raw:
        return default_slots()
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_SLOTS:
        raise InputError(
            Problem(
                "environment", None, ENV_MAX_JOBS,
                f"the number of optimisations at once must be a whole number from 1 to "
                f"{MAX_SLOTS}, not '{raw}'",
            )
        )  # fmt: skip
    return n


def _alive(pid: int, created: float) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - created) < 1e-2
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


class JobSlots:
    """``n`` solver slots shared through ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | Path, n: int):
        self.folder = Path(folder)
        self.queue = self.folder / "queue"
        self.queue.mkdir(parents=True, exist_ok=True)
        self.n = int(n)

    def _try_take(self) -> int | None:
        """Take a free slot: its open file descriptor (the lock), else ``None``."""
        for i in range(self.n):
            fd = os.open(self.folder / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            if _lock(fd):
                return fd
            os.close(fd)
        return None

    def busy(self) -> int:
        """How many slots are taken now."""
        taken = 0
        for i in range(self.n):
            fd = os.open(self.folder / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                taken += not _lock(fd)
            finally:
                os.close(fd)  # closing drops a lock this probe took
        return taken

    def _ticket(self) -> Path:
        import psutil

        me = psutil.Process()
        name = f"{time.time_ns():020d}-{me.pid}-{me.create_time():.3f}"
        path = self.queue / name
        path.touch()
        return path

    def waiting(self) -> list[Path]:
        """Tickets of jobs still waiting, first come first (gone processes' tickets removed)."""
        kept = []
        for path in sorted(self.queue.iterdir()):
            try:
                _, pid, created = path.name.split("-")
                alive = _alive(int(pid), float(created))
            except ValueError:
                alive = False
            if alive:
                kept.append(path)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()
        return kept

    @contextlib.contextmanager
    def hold(self, waiting: Callable[[int, int], None] | None = None) -> Iterator[None]:
        """Hold a slot while the block runs; until one is free, call ``waiting(position,
        slots)`` about every :data:`POLL_S` seconds (position 1: next in the queue)."""
        fd = self._try_take() if not self.waiting() else None
        ticket = None
        try:
            while fd is None:
                if ticket is None:
                    ticket = self._ticket()
                queue = self.waiting()
                position = queue.index(ticket) + 1 if ticket in queue else 1
                if position == 1:
                    fd = self._try_take()
                    if fd is not None:
                        break
                if waiting is not None:
                    waiting(position, self.n)
                time.sleep(POLL_S)
            if ticket is not None:
                with contextlib.suppress(OSError):
                    ticket.unlink()
                ticket = None
            yield
        finally:
            if ticket is not None:
                with contextlib.suppress(OSError):
                    ticket.unlink()
            if fd is not None:
                os.close(fd)


def be_gentle() -> None:
    """Lower this process's priority (a job's own process, never the server's)."""
    with contextlib.suppress(OSError, AttributeError):
        os.nice(JOB_NICENESS)
        return
    with contextlib.suppress(Exception):  # pragma: no cover - Windows
        import psutil

        psutil.Process().nice(psutil.BELOW_NORMAL_PRIORITY_CLASS)


def waiting_text(position: int, slots: int) -> str:
    """What a queued job's page says."""
    running = "1 optimisation is" if slots == 1 else f"{slots} optimisations are"
    ahead = "next in line" if position == 1 else f"{position - 1} ahead of this one"
    return f"waiting for a free solver: {running} running ({ahead})"


__all__ = [
    "ENV_MAX_JOBS",
    "SLOTS_DIR",
    "JobSlots",
    "be_gentle",
    "default_slots",
    "max_jobs",
    "waiting_text",
]
