"""A leaf's files in the run folder: samples appended as decided, the teacher's replies cached,
the manifest that says what the leaf was generated from and whether it is complete.

Resuming is replay: the pipeline runs the interrupted round again, every request whose reply is
in the cache is answered from it, and a candidate already written is not written twice.

Appends go through one writer thread (`WRITER`), so a decode step never waits on the disk: it
writes what has queued up as soon as it can, one write per file of whole lines, and fsyncs at
most FSYNC_INTERVAL seconds later, and at once on every stage boundary (a round's manifest,
the end of a leaf or of the stage). A kill -9 loses only the lines still queued — those of the
last moment; a power cut at most the last FSYNC_INTERVAL's. A line torn by a kill in the
middle of a write is cut before the file is read or appended to again.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from labdesk.errors import DiskFull, disk_full
from labdesk.fileio import append_bytes, read_jsonl, truncate_torn_tail, write_json
from labdesk.models.types import GenRequest, GenResult, ScoreRequest, ScoreResult
from labdesk.runs import RunPaths

FSYNC_INTERVAL = 1.0  # seconds


class AppendWriter:
    """JSON lines appended to files by a thread of its own; `flush()` waits for the disk."""

    def __init__(self, interval: float = FSYNC_INTERVAL) -> None:
        self.interval = interval
        self._queue: queue.SimpleQueue[tuple[Path, str] | threading.Event] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._error: OSError | DiskFull | None = None

    def append(self, path: Path, record: Any) -> str:
        """Queue `record` as a JSON line of `path`; returns the line."""
        self._raise_error()
        self._start()
        line = json.dumps(record, ensure_ascii=False)
        self._queue.put((path, line))
        return line

    def flush(self) -> None:
        """Return once every line queued so far is written and fsynced."""
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="labdesk-writer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        unsynced: set[Path] = set()
        due = 0.0  # when the oldest unsynced write must be on disk
        while True:
            timeout = max(0.0, due - time.monotonic()) if unsynced else None
            try:
                items = [self._queue.get(timeout=timeout)]
            except queue.Empty:
                items = []
            with contextlib.suppress(queue.Empty):
                while True:
                    items.append(self._queue.get_nowait())
            lines: dict[Path, list[str]] = {}
            waiting = []
            for item in items:
                if isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    lines.setdefault(item[0], []).append(item[1])
            path = None
            try:
                for path, rows in lines.items():
                    append_bytes(path, "".join(row + "\n" for row in rows).encode("utf-8"))
                    if not unsynced:
                        due = time.monotonic() + self.interval
                    unsynced.add(path)
                if unsynced and (waiting or time.monotonic() >= due):
                    for path in unsynced:
                        _fsync(path)
                    unsynced.clear()
            except OSError as exc:  # a full disk: the caller hears of it on its next call
                self._error = disk_full(exc, path) or exc
                unsynced.clear()
            for event in waiting:
                event.set()


def _fsync(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


WRITER = AppendWriter()
atexit.register(WRITER.flush)


class LeafFiles:
    """The accepted, rejected, held-out, manifest and cache files of one leaf."""

    def __init__(self, paths: RunPaths, slug: str) -> None:
        self.slug = slug
        self.accepted = paths.accepted(slug)
        self.rejected = paths.rejected(slug)
        self.heldout = paths.heldout(slug)
        self.manifest = paths.leaf_manifest(slug)
        self.cache = paths.generated / ".cache" / f"{slug}.jsonl"
        # The accepted and rejected records, read once and then kept as they are appended.
        self._records: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None

    def reset(self) -> None:
        """Forget the samples of this leaf (its inputs changed). The reply cache stays: its
        keys hold everything that determines a reply, so a request that did not change is
        answered from it again."""
        WRITER.flush()
        for path in (self.accepted, self.rejected, self.heldout, self.manifest):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._records = ([], [])

    def remove(self) -> None:
        """Everything of this leaf, its reply cache too (the leaf left the taxonomy)."""
        self.reset()
        self.cache.unlink(missing_ok=True)

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.manifest.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def write_manifest(self, data: dict[str, Any]) -> None:
        """A stage boundary: every sample and reply it counts is on disk before it is."""
        WRITER.flush()
        write_json(self.manifest, data)

    def records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Accepted and rejected records so far: read from disk the first time (a torn last
        line from a kill is cut off), then kept in memory as they are appended."""
        if self._records is None:
            WRITER.flush()
            for path in (self.accepted, self.rejected):
                truncate_torn_tail(path)
            self._records = (read_jsonl(self.accepted), read_jsonl(self.rejected))
        return list(self._records[0]), list(self._records[1])

    def append(self, record: dict[str, Any], *, accepted: bool) -> None:
        """Decide a sample: kept at once, on disk within moments (see WRITER)."""
        if self._records is None:
            self.records()
        assert self._records is not None
        line = WRITER.append(self.accepted if accepted else self.rejected, record)
        # kept as a reader of the file would see it, so a resumed run sees the same records
        self._records[0 if accepted else 1].append(json.loads(line))


class ReplyCache:
    """Every finished reply of this leaf, keyed by everything that determines it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._replies: dict[str, dict[str, Any]] = {}
        if path is not None:
            WRITER.flush()
            truncate_torn_tail(path)
            for row in read_jsonl(path):
                self._replies[row["key"]] = row

    @staticmethod
    def key(model: str, request: GenRequest) -> str:
        blob = json.dumps(
            [
                model,
                request.prompt,
                request.max_tokens,
                request.temperature,
                request.top_p,
                request.seed,
                request.stop,
                request.schema,
                request.pattern,
            ],
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> GenResult | None:
        row = self._replies.get(key)
        if row is None:
            return None
        return GenResult(
            row["text"], row["tokens"], row["prompt_tokens"], row["finish_reason"], row["value"]
        )

    def put(self, key: str, result: GenResult) -> None:
        row = {
            "key": key,
            "text": result.text,
            "tokens": result.tokens,
            "prompt_tokens": result.prompt_tokens,
            "finish_reason": result.finish_reason,
            "value": result.value,
        }
        self._replies[key] = row
        if self.path is not None:
            WRITER.append(self.path, row)

    @staticmethod
    def score_key(model: str, request: ScoreRequest) -> str:
        blob = json.dumps([model, "score", request.prompt, request.continuation])
        return hashlib.sha256(blob.encode()).hexdigest()

    def get_score(self, key: str) -> ScoreResult | None:
        row = self._replies.get(key)
        if row is None or "logprobs" not in row:
            return None
        return ScoreResult(row["tokens"], row["logprobs"], row["prompt_tokens"])

    def put_score(self, key: str, result: ScoreResult) -> None:
        row = {
            "key": key,
            "tokens": result.tokens,
            "logprobs": result.logprobs,
            "prompt_tokens": result.prompt_tokens,
        }
        self._replies[key] = row
        if self.path is not None:
            WRITER.append(self.path, row)
