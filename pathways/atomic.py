"""Atomic file writes: a reader sees the old file or the new one, never half of one.

A file written in place and cut off part way (the process killed, the machine losing
power) is left truncated: a results table that cannot be read, or a plan that is
missing its last sites. Every function here writes to a temporary file in the same
folder, flushes it and syncs it to disk, then renames it over the target with
:func:`os.replace`, which is atomic on POSIX and Windows when both names are on one
file system (hence the same folder). The folder is synced too, so the rename itself
survives a power cut.

A process killed part way leaves its temporary file behind (``.NAME.<random>.tmp``
next to the target); the target itself is untouched. Such leftovers are harmless and
may be deleted.

Usage::

    write_text_atomic(path, text)
    write_parquet_atomic(frame, path)
    write_csv_atomic(frame, path)
    with atomic_open(path, "wb") as f:   # anything that writes to a file object
        ...
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

TEMP_SUFFIX = ".tmp"
_NEW_FILE_MODE = 0o666  # as open() would create it, less the umask


def _temp_path(target: Path) -> Path:
    """A fresh hidden name next to ``target`` (same folder, so the rename is atomic)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def _create_temp(target: Path) -> tuple[Path, int]:
    """Create and open a new temporary file for ``target``; it gets the umask's permissions."""
    while True:
        temp = _temp_path(target)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         _NEW_FILE_MODE)  # fmt: skip
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
        return temp, fd


def _keep_mode_of(target: Path, temp: Path) -> None:
    """Give the new file the permissions of the file it replaces (if there is one)."""
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        return
    with contextlib.suppress(OSError):
        os.chmod(temp, mode)


def _sync_folder(folder: Path) -> None:
    """Sync a folder so a rename in it is on disk (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows: folders cannot be opened; the rename is durable there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8", **kwargs: Any
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the ``with`` block ends without error.

    ``mode`` is ``"w"`` (text, ``encoding``) or ``"wb"`` (bytes); other keyword
    arguments go to :func:`open` (e.g. ``newline=""``). On an error the temporary
    file is removed and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    target = Path(path)
    temp, fd = _create_temp(target)
    try:
        try:
            text = {} if mode == "wb" else {"encoding": encoding}
            f = open(fd, mode, **text, **kwargs)  # noqa: SIM115 - closed before the rename
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _keep_mode_of(target, temp)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _sync_folder(target.parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
    return Path(path)


def write_parquet_atomic(frame: pd.DataFrame, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """``frame.to_parquet(path, index=False)``, atomically; returns the path."""
    kwargs.setdefault("index", False)
    with atomic_open(path, "wb") as f:
        frame.to_parquet(f, **kwargs)
    return Path(path)


def write_csv_atomic(frame: pd.DataFrame, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """``frame.to_csv(path, index=False)``, atomically; returns the path."""
    kwargs.setdefault("index", False)
    with atomic_open(path, "w", newline="") as f:
        frame.to_csv(f, **kwargs)
    return Path(path)
