from __future__ import annotations

import json
from pathlib import Path

import pytest

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
