"""A leaf's files in the run folder: samples appended as decided, the teacher's replies cached,
the manifest that says what the leaf was generated from and whether it is complete.

Resuming is replay: the pipeline runs the interrupted round again, every request whose reply is
in the cache is answered from it, and a candidate already written is not written twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from labdesk.fileio import append_jsonl, read_jsonl, truncate_torn_tail, write_json
from labdesk.models.types import GenRequest, GenResult
from labdesk.runs import RunPaths


class LeafFiles:
    """The accepted, rejected, held-out, manifest and cache files of one leaf."""

    def __init__(self, paths: RunPaths, slug: str) -> None:
        self.slug = slug
        self.accepted = paths.accepted(slug)
        self.rejected = paths.rejected(slug)
        self.heldout = paths.heldout(slug)
        self.manifest = paths.leaf_manifest(slug)
        self.cache = paths.generated / ".cache" / f"{slug}.jsonl"

    def reset(self) -> None:
        """Forget everything generated for this leaf (its inputs changed)."""
        for path in (self.accepted, self.rejected, self.heldout, self.manifest, self.cache):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def read_manifest(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.manifest.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def write_manifest(self, data: dict[str, Any]) -> None:
        write_json(self.manifest, data)

    def records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Accepted and rejected records so far (a torn last line from a kill is cut off)."""
        for path in (self.accepted, self.rejected):
            truncate_torn_tail(path)
        return read_jsonl(self.accepted), read_jsonl(self.rejected)

    def drop_cache(self) -> None:
        """The reply cache only serves resuming: a complete leaf no longer needs it."""
        self.cache.unlink(missing_ok=True)

    def append(self, record: dict[str, Any], *, accepted: bool) -> None:
        append_jsonl(self.accepted if accepted else self.rejected, record)


class ReplyCache:
    """Every finished reply of this leaf, keyed by everything that determines it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._replies: dict[str, dict[str, Any]] = {}
        if path is not None:
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
                request.schema,
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
            append_jsonl(self.path, row)
