from __future__ import annotations

import errno
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labdesk.errors import DiskFull
from labdesk.fileio import append_jsonl, atomic_writer, read_jsonl, truncate_torn_tail, write_text


def test_failed_atomic_write_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_writer(target) as handle:
        handle.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left


def test_torn_jsonl_tail_is_ignored_then_cut(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    append_jsonl(path, {"i": 1})
    append_jsonl(path, {"i": 2})
    with open(path, "a") as handle:
        handle.write('{"i": 3, "tru')  # a writer killed mid-line
    assert read_jsonl(path) == [{"i": 1}, {"i": 2}]
    truncate_torn_tail(path)
    append_jsonl(path, {"i": 3})
    assert [json.loads(line)["i"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"i": 1}\nnot json\n{"i": 2}\n')
    with pytest.raises(json.JSONDecodeError):
        read_jsonl(path)


def test_an_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old_content(
    tmp_path: Path,
) -> None:
    """A partition cannot be filled here: the write fails with the OS's own ENOSPC error."""
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(DiskFull) as raised, atomic_writer(target) as handle:
        handle.write("half of the new")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert raised.value.where == str(target)
    assert "the disk is full" in str(raised.value) and "GiB free in" in str(raised.value)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_an_append_on_a_full_disk_is_a_clear_error(tmp_path: Path) -> None:
    """/dev/full answers every write with a real ENOSPC from the kernel."""
    path = tmp_path / "records.jsonl"
    path.symlink_to("/dev/full")
    with pytest.raises(DiskFull) as raised:
        append_jsonl(path, {"i": 1})
    assert raised.value.where == str(path)
    assert "run it again to resume" in str(raised.value)


def test_an_append_cut_short_leaves_only_whole_lines(tmp_path: Path) -> None:
    """A real file-size limit (RLIMIT_FSIZE) in a child process cuts a write short the way a
    full disk does: part of the line lands, then write() fails."""
    path = tmp_path / "records.jsonl"
    script = textwrap.dedent(
        f"""
        import resource, signal
        from pathlib import Path
        from labdesk.fileio import append_jsonl
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write(), not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
        for i in range(100):
            try:
                append_jsonl(Path({str(path)!r}), {{"i": i, "pad": "x" * 90}})
            except OSError as exc:
                print(i, exc.errno)
                break
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    failed_at = int(done.stdout.split()[0])
    assert 0 < failed_at < 100
    text = path.read_text()
    assert text.endswith("\n") and len(text) < 1000
    assert [json.loads(line)["i"] for line in text.splitlines()] == list(range(failed_at))
