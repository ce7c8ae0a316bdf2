"""Self-distillation replay: the base model's own answers, made once, cut-off answers trimmed
to their whole sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.fileio import read_jsonl
from labdesk.recipes import ModelRef
from labdesk.train.replay import general_prompts, replay_cache, self_replay, whole_sentences
from labdesk.workspace import Workspace

pytestmark = pytest.mark.slow


def test_answers_are_made_once_and_cut_offs_trimmed(tmp_path: Path) -> None:
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
    by_prompt = {r["prompt"]: r for r in rows}
    kept = {s["messages"][1]["content"]: s["messages"][2]["content"] for s in samples}
    for prompt, row in by_prompt.items():
        if row["finish"] == "stop":
            assert kept[prompt] == row["answer"].strip()
        elif whole := whole_sentences(row["answer"]):  # cut at the budget: whole sentences only
            assert kept[prompt] == whole and row["answer"].startswith(whole)
        else:
            assert prompt not in kept
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


@pytest.mark.parametrize(
    ("cut", "whole"),
    [
        ("Paris is the capital. It lies on the Sei", "Paris is the capital."),
        ('She said "go." Then she', 'She said "go."'),
        ("It is 3.5 metres tall. It", "It is 3.5 metres tall."),
        ("Three steps:\n1. Mix it.\n2. Bake", "Three steps:\n1. Mix it."),
        ("1. Mix\n2. Bake", ""),  # a list marker ends no sentence
        ("No sentence ends here", ""),
    ],
)
def test_a_cut_answer_keeps_its_whole_sentences(cut: str, whole: str) -> None:
    assert whole_sentences(cut) == whole
