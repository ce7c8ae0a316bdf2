"""Self-distillation replay: the base model's own answers, made once, cut-off answers dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.fileio import read_jsonl
from labdesk.recipes import ModelRef
from labdesk.train.replay import general_prompts, replay_cache, self_replay
from labdesk.workspace import Workspace

pytestmark = pytest.mark.slow


def test_answers_are_made_once_and_cut_offs_dropped(tmp_path: Path) -> None:
    from labdesk.models.store import resolve_model

    ws = Workspace.open(tmp_path / "home")
    gguf = resolve_model(ModelRef(builtin="tiny-teacher"), ws, want="gguf")
    kwargs = {"system_prompt": "You help.", "max_tokens": 24, "cache_dir": ws.cache}
    samples = self_replay(gguf, "tiny", 6, **kwargs)  # type: ignore[arg-type]
    cache = replay_cache(ws.cache, "tiny", general_prompts()[:6], "You help.", 24)
    rows = read_jsonl(cache)
    assert [
        r["prompt"] for r in sorted(rows, key=lambda r: general_prompts().index(r["prompt"]))
    ] == general_prompts()[:6]
    finished = [r for r in rows if r["finish"] == "stop" and r["answer"].strip()]
    assert len(samples) == len(finished)
    kept = {s["messages"][1]["content"] for s in samples}
    assert all(r["prompt"] not in kept for r in rows if r["finish"] == "length")
    for sample in samples:
        assert [m["role"] for m in sample["messages"]] == ["system", "user", "assistant"]
        assert sample["metadata"]["type"] == "self_replay"
    # Made once: a second call reads the cache (the file is not touched).
    stamp = cache.stat().st_mtime_ns
    assert self_replay(gguf, "tiny", 6, **kwargs) == samples  # type: ignore[arg-type]
    assert cache.stat().st_mtime_ns == stamp
    # An interrupted set resumes: drop the last line, only that prompt is answered again.
    cache.write_text("".join(line + "\n" for line in cache.read_text().splitlines()[:-1]))
    assert len(self_replay(gguf, "tiny", 6, **kwargs)) == len(samples)  # type: ignore[arg-type]
    assert len(read_jsonl(cache)) == 6
