"""Durability off the decode path: appends are queued to a writer thread that writes whole
lines at once and fsyncs at a bounded interval; a kill -9 loses only the last moment's lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from labdesk.errors import DiskFull
from labdesk.generate.state import AppendWriter, LeafFiles
from labdesk.runs import RunPaths


def test_appends_are_fsynced_in_batches_within_the_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[float] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(time.monotonic())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    writer = AppendWriter(interval=0.25)
    path = tmp_path / "a.jsonl"
    appended = []
    for i in range(150):
        writer.append(path, {"i": i})
        appended.append(time.monotonic())
        time.sleep(0.01)
    writer.flush()
    assert [json.loads(line)["i"] for line in path.read_text().splitlines()] == list(range(150))
    # Far fewer fsyncs than appends, and every append on disk within the interval (+ slack for
    # a busy machine): the writer syncs what has gathered, not each line.
    assert 2 <= len(synced) < 40
    slack = 0.75
    assert all(any(t <= s <= t + 0.25 + slack for s in synced) for t in appended)


def test_flush_waits_for_every_file_and_errors_reach_the_caller(tmp_path: Path) -> None:
    writer = AppendWriter(interval=60.0)  # only flush() syncs here
    paths = [tmp_path / f"{n}.jsonl" for n in range(3)]
    threads = [
        threading.Thread(target=lambda p=p: [writer.append(p, {"n": k}) for k in range(200)])
        for p in paths
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.flush()
    for path in paths:
        assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == list(range(200))
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    writer.append(blocked / "x.jsonl", {"n": 1})  # its folder cannot be made
    with pytest.raises(OSError):
        writer.flush()
    writer.append(paths[0], {"n": 200})  # the writer carries on
    writer.flush()
    assert json.loads(paths[0].read_text().splitlines()[-1]) == {"n": 200}


def test_a_full_disk_reaches_the_caller_naming_the_file(tmp_path: Path) -> None:
    """/dev/full answers every write with a real ENOSPC from the kernel."""
    writer = AppendWriter(interval=60.0)
    full = tmp_path / "accepted.jsonl"
    full.symlink_to("/dev/full")
    writer.append(full, {"n": 1})
    with pytest.raises(DiskFull) as raised:
        writer.flush()
    assert raised.value.where == str(full)
    kept = tmp_path / "kept.jsonl"
    writer.append(kept, {"n": 2})  # the writer carries on once there is room
    writer.flush()
    assert json.loads(kept.read_text()) == {"n": 2}


def test_records_are_kept_in_memory_as_a_reader_of_the_files_sees_them(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "run")
    files = LeafFiles(paths, "leaf")
    assert files.records() == ([], [])
    files.append({"metadata": {"id": "a", "pair": ("x", 1)}}, accepted=True)
    files.append({"metadata": {"id": "b"}}, accepted=False)
    accepted, rejected = files.records()
    assert accepted == [{"metadata": {"id": "a", "pair": ["x", 1]}}]  # JSON's view of a tuple
    assert rejected == [{"metadata": {"id": "b"}}]
    accepted.clear()  # a copy: the caller cannot change what the leaf holds
    files.write_manifest({"complete": False})  # a stage boundary: all of it is on disk
    assert LeafFiles(paths, "leaf").records() == files.records()
    files.reset()
    assert files.records() == ([], []) and not paths.accepted("leaf").exists()


CHILD = """
import sys, time
from pathlib import Path
from labdesk.fileio import write_text
from labdesk.errors import DiskFull
from labdesk.generate.state import LeafFiles
from labdesk.runs import RunPaths
files = LeafFiles(RunPaths(Path(sys.argv[1])), "leaf")
marker = Path(sys.argv[2])
for i in range(1_000_000):
    files.append({"metadata": {"id": str(i)}, "text": "x" * (i % 300)}, accepted=True)
    if i % 50 == 49:
        files.write_manifest({"written": i + 1})  # a round's end: flushed, then counted
        write_text(marker, str(i + 1))
    time.sleep(0.0005)
"""


def test_kill_9_keeps_every_flushed_record_and_no_torn_line(tmp_path: Path) -> None:
    run, marker = tmp_path / "run", tmp_path / "marker"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(run), str(marker)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if marker.exists() and marker.read_text() and int(marker.read_text()) >= 300:
                break
            time.sleep(0.01)
        assert child.poll() is None, "the child ended before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    flushed = int(marker.read_text())
    lines = RunPaths(run).accepted("leaf").read_bytes().split(b"\n")
    assert lines[-1] == b"", "a torn last line"
    ids = [int(json.loads(line)["metadata"]["id"]) for line in lines[:-1]]
    assert ids == list(range(len(ids)))  # in order, none twice, none missing
    assert len(ids) >= flushed
    accepted, _ = LeafFiles(RunPaths(run), "leaf").records()
    assert len(accepted) == len(ids)
