"""Writes that survive a crash: whole files are replaced atomically, JSONL lines are flushed."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from labdesk.errors import disk_full


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on success fsync and rename it over `path`.

    On any error (a full disk, Ctrl-C) the temp file is removed and `path` keeps its old content;
    a full disk is raised as `DiskFull` naming `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if (full := disk_full(exc, path)) is not None:
            raise full from exc
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_writer(path) as handle:
        handle.write(text)


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    with atomic_writer(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def append_bytes(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Append `data` in unbuffered writes, then fsync it with `sync`; if a write fails (a full
    disk) the file is cut back to its earlier length, so it never ends in half a record."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            with contextlib.suppress(OSError):  # a special file (a pipe, /dev/full) has no length
                os.ftruncate(fd, size)
            raise
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def append_jsonl(path: Path, row: Any) -> None:
    """Append one record and fsync it, so a killed process loses at most this line; a full disk
    is raised as `DiskFull`, with the file left at its earlier whole lines."""
    try:
        append_bytes(path, (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"), sync=True)
    except OSError as exc:
        if (full := disk_full(exc, path)) is not None:
            raise full from exc
        raise


def read_jsonl(path: Path) -> list[Any]:
    """Read records, ignoring a torn last line left by a killed writer."""
    rows: list[Any] = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # only the unterminated last line may be torn
                break
            raise
    return rows


def truncate_torn_tail(path: Path) -> None:
    """Cut an unterminated last line (a writer killed mid-line) so appends start clean."""
    if not path.exists():
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return
        handle.truncate(data.rfind(b"\n") + 1)
