"""Build the three phase datasets from a run's accepted samples, with replay.

- knowledge_1 (short): every knowledge sample closed-book (question → answer, augmentations as
  generated) and, where it has a chunk, once more with that chunk as context.
- knowledge_2 (long): each Q&A with its chunk hidden among distractor chunks from other
  documents, plus a replay share of knowledge_1 so the short facts are not washed out.
- skills: every skill leaf resampled to ``skills_per_leaf``, plus a replay share of knowledge and
  an optional user-supplied set of general chat data (replay against forgetting the base model).

Every sample gets the recipe's system prompt here. ``metadata.train_on`` tells the tokenizer
whether loss covers only the assistant turn or the whole text (knowledge augmentations).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labdesk.errors import ConfigError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.fileio import read_jsonl, write_json, write_jsonl
from labdesk.recipes import MixSettings
from labdesk.runs import PHASES, RunPaths, require_data

Sample = dict[str, Any]

# Knowledge samples whose whole text is worth learning (the method trains on it fully).
FULL_TEXT_TYPES = frozenset({"summary", "key_facts", "detailed_summary", "extractive_summary"})


@dataclass(frozen=True)
class CompositionRow:
    phase: str
    source: str
    samples: int


@dataclass(frozen=True)
class Composition:
    rows: tuple[CompositionRow, ...]

    def total(self, phase: str) -> int:
        return sum(r.samples for r in self.rows if r.phase == phase)

    def count(self, phase: str, source: str) -> int:
        return sum(r.samples for r in self.rows if r.phase == phase and r.source == source)

    def to_json(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.rows]


def load_accepted(run: RunPaths) -> list[Sample]:
    """Every accepted generated sample of the run, in a stable order (by file name)."""
    files = sorted(
        p for p in run.generated.glob("*.jsonl") if not p.name.endswith(".rejected.jsonl")
    )
    samples: list[Sample] = []
    for path in files:
        for number, row in enumerate(read_jsonl(path), start=1):
            _check_sample(row, f"{path}:{number}")
            samples.append(row)
    return samples


def _check_sample(row: Any, where: str) -> None:
    ok = (
        isinstance(row, dict)
        and isinstance(row.get("messages"), list)
        and any(m.get("role") == "assistant" for m in row["messages"] if isinstance(m, dict))
    )
    if not ok:
        raise ConfigError(
            "not a chat sample: expected {'messages': [... an assistant turn ...]}",
            where=where,
            hint="re-run `labdesk generate` for this leaf, or fix the file",
        )


def _meta(sample: Sample) -> dict[str, Any]:
    meta = sample.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _turns(sample: Sample) -> list[dict[str, str]]:
    return [m for m in sample["messages"] if m.get("role") != "system"]


def _with(
    sample: Sample, system_prompt: str, turns: list[dict[str, str]], suffix: str, **meta: Any
) -> Sample:
    metadata = dict(_meta(sample))
    metadata["id"] = f"{metadata.get('id', '?')}{suffix}"
    metadata.setdefault("train_on", "assistant")
    metadata.update(meta)
    return {
        "messages": [{"role": "system", "content": system_prompt}, *turns],
        "metadata": metadata,
    }


def _question_answer(sample: Sample) -> tuple[str, list[dict[str, str]]]:
    turns = _turns(sample)
    return turns[0]["content"], turns[1:]


def _context_prompt(chunks: list[str], question: str) -> str:
    docs = "\n\n".join(f"Document {i}:\n{text}" for i, text in enumerate(chunks, start=1))
    return f"{docs}\n\nAnswer using the documents above.\n{question}"


def _chunk_key(chunk: dict[str, Any]) -> tuple[str, int]:
    return str(chunk.get("document")), int(chunk.get("index", 0))


def mix(
    samples: list[Sample],
    settings: MixSettings,
    system_prompt: str,
    replay_set: list[Sample] | None = None,
) -> tuple[dict[str, list[Sample]], Composition]:
    """Pure mixing: samples in, the three phase datasets and their composition out."""
    rng = random.Random(settings.seed)
    knowledge = [s for s in samples if _meta(s).get("kind") == "knowledge"]
    skills = [s for s in samples if _meta(s).get("kind") != "knowledge"]
    rows: list[CompositionRow] = []

    # knowledge_1: short samples
    phase1: list[Sample] = []
    closed = [_knowledge_closed(s, system_prompt) for s in knowledge]
    with_chunk = [
        _with(s, system_prompt, _chunk_turns(s), "#chunk")
        for s in knowledge
        if _is_qa(s) and _chunk(s) is not None
    ]
    phase1 = closed + with_chunk
    rows += [
        CompositionRow("knowledge_1", "knowledge closed-book", len(closed)),
        CompositionRow("knowledge_1", "knowledge with its chunk", len(with_chunk)),
    ]

    # knowledge_2: long samples among distractors + replay of phase 1
    chunks: dict[tuple[str, int], dict[str, Any]] = {}
    for s in knowledge:
        chunk = _chunk(s)
        if chunk is not None:
            chunks.setdefault(_chunk_key(chunk), chunk)
    long_samples = [
        _long_sample(s, chunks, settings.distractors, rng, system_prompt)
        for s in knowledge
        if _is_qa(s) and _chunk(s) is not None
    ]
    replay1 = _take(rng, phase1, round(settings.knowledge_replay * len(phase1)), "#replay")
    rows += [
        CompositionRow("knowledge_2", "knowledge among distractors", len(long_samples)),
        CompositionRow("knowledge_2", "replay of knowledge_1", len(replay1)),
    ]

    # skills: each leaf resampled to its target + knowledge replay + general replay
    phase3: list[Sample] = []
    by_leaf: dict[str, list[Sample]] = {}
    for s in skills:
        by_leaf.setdefault(str(_meta(s).get("leaf")), []).append(s)
    for leaf in sorted(by_leaf):
        pool = [_with(s, system_prompt, _turns(s), "") for s in by_leaf[leaf]]
        phase3 += _resample(rng, pool, settings.skills_per_leaf)
    rows.append(CompositionRow("skills", f"skills ({len(by_leaf)} leaves)", len(phase3)))
    knowledge_pool = phase1 + long_samples
    replay_k = _take(
        rng, knowledge_pool, round(settings.skills_knowledge_replay * len(phase1)), "#replay"
    )
    rows.append(CompositionRow("skills", "replay of knowledge", len(replay_k)))
    general = [
        _with(s, system_prompt, _turns(s), "", leaf="replay_set", kind="replay")
        for s in (replay_set or [])
    ]
    rows.append(CompositionRow("skills", "general replay set", len(general)))

    phases = {
        "knowledge_1": _shuffled(rng, phase1),
        "knowledge_2": _shuffled(rng, long_samples + replay1),
        "skills": _shuffled(rng, phase3 + replay_k + general),
    }
    return phases, Composition(tuple(r for r in rows if r.samples))


def _is_qa(sample: Sample) -> bool:
    return _meta(sample).get("type", "qa") == "qa"


def _chunk(sample: Sample) -> dict[str, Any] | None:
    chunk = _meta(sample).get("chunk")
    return chunk if isinstance(chunk, dict) and chunk.get("text") else None


def _knowledge_closed(sample: Sample, system_prompt: str) -> Sample:
    full = _meta(sample).get("type") in FULL_TEXT_TYPES
    return _with(sample, system_prompt, _turns(sample), "", train_on="all" if full else "assistant")


def _chunk_turns(sample: Sample) -> list[dict[str, str]]:
    question, rest = _question_answer(sample)
    chunk = _chunk(sample)
    assert chunk is not None
    return [{"role": "user", "content": _context_prompt([chunk["text"]], question)}, *rest]


def _long_sample(
    sample: Sample,
    chunks: dict[tuple[str, int], dict[str, Any]],
    distractors: int,
    rng: random.Random,
    system_prompt: str,
) -> Sample:
    chunk = _chunk(sample)
    assert chunk is not None
    key = _chunk_key(chunk)
    others = [c for k, c in chunks.items() if k[0] != key[0]]
    if len(others) < distractors:  # too few other documents: other chunks of the same one
        others += [c for k, c in chunks.items() if k[0] == key[0] and k != key]
    picked = [*rng.sample(others, min(distractors, len(others))), chunk]
    rng.shuffle(picked)
    question, rest = _question_answer(sample)
    turns = [{"role": "user", "content": _context_prompt([c["text"] for c in picked], question)}]
    return _with(sample, system_prompt, turns + rest, "#long")


def _take(rng: random.Random, pool: list[Sample], count: int, suffix: str) -> list[Sample]:
    picked = rng.sample(pool, min(count, len(pool)))
    return [{**s, "metadata": {**_meta(s), "id": _meta(s).get("id", "?") + suffix}} for s in picked]


def _resample(rng: random.Random, pool: list[Sample], count: int) -> list[Sample]:
    """Exactly `count` samples: whole copies of the pool, then a random remainder."""
    if not pool:
        return []
    out = pool * (count // len(pool)) + rng.sample(pool, count % len(pool))
    return out


def _shuffled(rng: random.Random, rows: list[Sample]) -> list[Sample]:
    rows = list(rows)
    rng.shuffle(rows)
    return rows


def read_replay_set(path: Path) -> list[Sample]:
    if not path.is_file():
        raise ConfigError(
            f"replay set {path} not found",
            where="mix.replay_set",
            hint="point mix.replay_set at a JSONL file of chat samples, or remove it",
        )
    rows = read_jsonl(path)
    for number, row in enumerate(rows, start=1):
        _check_sample(row, f"{path}:{number}")
    return rows


def mix_run(
    run: RunPaths,
    settings: MixSettings,
    system_prompt: str,
    reporter: Reporter = null_reporter,
    *,
    leaves: Iterable[str] | None = None,
) -> Composition:
    """Mix a run's accepted samples into ``run.mixed`` (atomic writes) and return the table.

    Refuses when any of `leaves` (default: those generation started on) has no accepted sample.
    """
    require_data(run, leaves)
    samples = load_accepted(run)
    if not samples:
        raise ConfigError(
            "no accepted samples to mix",
            where=str(run.generated),
            hint="run `labdesk generate` first",
        )
    replay = read_replay_set(Path(settings.replay_set).expanduser()) if settings.replay_set else []
    reporter(Event("mix", "start", f"mixing {len(samples)} samples", total=len(PHASES)))
    phases, composition = mix(samples, settings, system_prompt, replay)
    for done, phase in enumerate(PHASES, start=1):
        write_jsonl(run.phase_data(phase), phases[phase])
        reporter(Event("mix", "progress", step=phase, done=done, total=len(PHASES)))
    write_json(run.composition, composition.to_json())
    reporter(Event("mix", "done", json.dumps({p: len(phases[p]) for p in PHASES})))
    return composition
