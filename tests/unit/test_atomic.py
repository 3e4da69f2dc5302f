"""Atomic file writes: a reader sees the old file or the new one, never part of one."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pathways.atomic import (
    atomic_open,
    write_bytes_atomic,
    write_csv_atomic,
    write_parquet_atomic,
    write_text_atomic,
)

REPO = Path(__file__).resolve().parents[2]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_text_is_written_and_replaces_the_old_file(tmp_path):
    path = tmp_path / "summary.md"
    write_text_atomic(path, "old\n")
    assert write_text_atomic(path, "new\r\nline £\n") == path
    assert path.read_bytes() == "new\r\nline £\n".encode()  # no newline translation
    assert leftovers(tmp_path) == []


def test_frames_round_trip(tmp_path):
    frame = pd.DataFrame({"case_id": ["a", "b"], "beds": [10, 12], "share": [0.5, float("nan")]})
    write_parquet_atomic(frame, tmp_path / "results.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "results.parquet"), frame)
    write_csv_atomic(frame, tmp_path / "results.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results.csv"), frame)
    assert b"\r" not in (tmp_path / "results.csv").read_bytes()
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert leftovers(tmp_path) == []


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "results.parquet"
    write_text_atomic(path, "the old results")
    with pytest.raises(RuntimeError, match="disk full"), atomic_open(path, "w") as f:
        f.write("half of the new res")
        raise RuntimeError("disk full")
    assert path.read_text() == "the old results"
    assert leftovers(tmp_path) == []

    class NotAFrame(pd.DataFrame):
        def to_parquet(self, *args, **kwargs):
            args[0].write(b"PAR1 partial")
            raise OSError("cannot write")

    with pytest.raises(OSError, match="cannot write"):
        write_parquet_atomic(NotAFrame({"a": [1]}), path)
    assert path.read_text() == "the old results"
    assert leftovers(tmp_path) == []


def test_only_whole_file_modes_are_allowed(tmp_path):
    for mode in ("a", "r+", "x", "ab"):
        with pytest.raises(ValueError, match="whole files"), atomic_open(tmp_path / "f", mode):
            pass
    assert not (tmp_path / "f").exists()


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_permissions_follow_the_umask_or_the_file_replaced(tmp_path):
    old_umask = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "new.txt", "x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640
    kept = tmp_path / "kept.txt"
    kept.write_text("x")
    kept.chmod(0o600)
    write_text_atomic(kept, "y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_text() == "y"


WRITER = r"""
import sys, threading
from pathways.atomic import atomic_open

with atomic_open(sys.argv[1], "w") as f:
    f.write("new results, first part\n" * 1000)
    f.flush()
    print("writing", flush=True)
    threading.Event().wait()  # killed here, part way through the file
"""


@pytest.mark.skipif(os.name != "posix", reason="kills with SIGKILL")
def test_a_writer_killed_part_way_leaves_the_old_file(tmp_path):
    path = tmp_path / "summary.html"
    write_text_atomic(path, "<p>old summary</p>")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert proc.stdout.readline() == "writing\n"  # waits until it is part way
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=120)
    assert path.read_text() == "<p>old summary</p>"
    # What the killed writer leaves is its hidden temporary file, not a half target.
    (temp,) = leftovers(tmp_path)
    assert temp.startswith(".summary.html.")
