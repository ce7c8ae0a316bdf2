"""Build the three phase datasets from a run's accepted samples, with replay.

- knowledge_1 (short): every knowledge sample closed-book: the question alone, the answer
  (several questions per fact come from generation), and the chunk summaries as whole texts.
- knowledge_2 (long): the document itself, chunk by chunk, as text to learn whole; each Q&A
  (a `long_share` of them) with its chunk hidden among distractor chunks from other documents;
  and a replay share of knowledge_1 so the short facts are not washed out.
- skills: every skill leaf resampled to ``skills_per_leaf``, plus a replay share of knowledge
  and an optional user-supplied set of general chat data.

Every phase also gets a share of the self-distillation replay set (the base student's own
answers to general prompts, see `labdesk.train.replay`), which protects what it knew.

Every sample gets the recipe's system prompt here. ``metadata.train_on`` tells the tokenizer
whether loss covers only the assistant turn or the whole text (knowledge augmentations).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from labdesk.errors import ConfigError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.fileio import read_jsonl, write_json, write_jsonl
from labdesk.recipes import MixSettings
from labdesk.runs import (
    PHASES,
    RunPaths,
    generation_finished,
    leaves_without_data,
    require_data,
)

if TYPE_CHECKING:
    import threading

    from labdesk.recipes import Recipe
    from labdesk.taxonomy.leaves import Leaf
    from labdesk.workspace import Workspace

Sample = dict[str, Any]

# Knowledge samples whose whole text is worth learning (the method trains on it fully).
FULL_TEXT_TYPES = frozenset({"summary"})


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


def leaves_to_mix(
    leaves: Sequence[Leaf], skip: Sequence[str], run: RunPaths, reporter: Reporter = null_reporter
) -> list[str]:
    """The paths of the taxonomy's `leaves` a mix of `run` works on: all but those the recipe's
    `skip_leaves` leaves out. Those must hold no samples in the run, since mixing takes every
    accepted file there and would train them: a ConfigError names them (generating the run
    again removes them)."""
    from labdesk.generate.selection import without_skipped

    kept = without_skipped(leaves, skip, reporter=reporter, stage="mix")
    working = {leaf.slug for leaf in kept}
    held = [x.path for x in leaves if x.slug not in working and run.accepted(x.slug).exists()]
    if held:
        raise ConfigError(
            f"the run still holds samples of {', '.join(held)}, which the recipe's skip_leaves "
            "leaves out",
            where=str(run.generated),
            hint=f"generating the run again removes them (`labdesk generate {run.root.name}`); "
            "their teacher replies stay cached",
        )
    return [leaf.path for leaf in kept]


def check_data(
    run: RunPaths,
    leaves: Iterable[str] | None,
    policy: Literal["refuse", "skip"],
    reporter: Reporter = null_reporter,
) -> None:
    """Refuse the leaves of `leaves` (default: those generation started on) that have no
    accepted samples, naming them with the fix (`runs.require_data`). With `policy` "skip"
    (`mix.leaves_without_data`) a leaf whose generation finished with none, the judges having
    passed nothing, is left out with a warning instead; one never generated, or stopped midway,
    is still refused, since generating it is the fix."""
    missing = leaves_without_data(run, leaves)
    if policy == "skip":
        judged = [leaf for leaf in missing if generation_finished(run, leaf)]
        if judged:
            message = f"no accepted samples (the judges passed none), left out: {', '.join(judged)}"
            reporter(Event("mix", "warning", message))
        missing = [leaf for leaf in missing if leaf not in judged]
    require_data(run, missing)


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
    self_replay: list[Sample] | None = None,
) -> tuple[dict[str, list[Sample]], Composition]:
    """Pure mixing: samples in, the three phase datasets and their composition out."""
    rng = random.Random(settings.seed)
    knowledge = [s for s in samples if _meta(s).get("kind") == "knowledge"]
    skills = [s for s in samples if _meta(s).get("kind") != "knowledge"]
    rows: list[CompositionRow] = []

    # knowledge_1: short samples, closed-book
    phase1 = [_knowledge_closed(s, system_prompt) for s in knowledge]
    rows.append(CompositionRow("knowledge_1", "knowledge closed-book", len(phase1)))

    # knowledge_2: the document text, long samples among distractors, replay of phase 1
    chunks: dict[tuple[str, int], dict[str, Any]] = {}
    for s in knowledge:
        chunk = _chunk(s)
        if chunk is not None:
            chunks.setdefault(_chunk_key(chunk), chunk)
    documents = (
        [_document_sample(c, system_prompt) for _, c in sorted(chunks.items())]
        if settings.document_text
        else []
    )
    with_chunk = [s for s in knowledge if _is_qa(s) and _chunk(s) is not None]
    with_chunk = rng.sample(with_chunk, round(settings.long_share * len(with_chunk)))
    long_samples = [
        _long_sample(s, chunks, settings.distractors, rng, system_prompt) for s in with_chunk
    ]
    replay1 = _take(rng, phase1, round(settings.knowledge_replay * len(phase1)), "#replay")
    rows += [
        CompositionRow("knowledge_2", "document text", len(documents)),
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
    leaves = f"{len(by_leaf)} {'leaf' if len(by_leaf) == 1 else 'leaves'}"
    rows.append(CompositionRow("skills", f"skills ({leaves})", len(phase3)))
    replay_k = _take(
        rng, phase1 + long_samples, round(settings.skills_knowledge_replay * len(phase1)), "#replay"
    )
    rows.append(CompositionRow("skills", "replay of knowledge", len(replay_k)))
    general = [
        _with(s, system_prompt, _turns(s), "", leaf="replay_set", kind="replay")
        for s in (replay_set or [])
    ]
    rows.append(CompositionRow("skills", "general replay set", len(general)))

    phases = {
        "knowledge_1": phase1,
        "knowledge_2": documents + long_samples + replay1,
        "skills": phase3 + replay_k + general,
    }
    # Self-distillation replay in every phase, a share of what the phase holds (drawn anew
    # per phase, so the phases together see as much of the set as they can).
    own = [_with(s, system_prompt, _turns(s), "") for s in (self_replay or [])]
    for phase, data in phases.items():
        count = round(settings.self_replay_share * len(data)) if data else 0
        picked = _take(rng, own, count, f"#{phase}")
        rows.append(CompositionRow(phase, "self-distillation replay", len(picked)))
        phases[phase] = _shuffled(rng, data + picked)
    return phases, Composition(tuple(r for r in rows if r.samples))


def _document_sample(chunk: dict[str, Any], system_prompt: str) -> Sample:
    """A chunk of the document as a text to learn whole: asked for by its heading."""
    heading = chunk.get("heading") or Path(str(chunk.get("document"))).stem
    turns = [
        {"role": "user", "content": f"What does the document say about {heading}?"},
        {"role": "assistant", "content": str(chunk["text"])},
    ]
    key = f"document/{chunk.get('document')}#{chunk.get('index', 0)}"
    meta = {"id": key, "kind": "knowledge", "type": "document", "chunk": chunk}
    return _with({"metadata": meta}, system_prompt, turns, "")


def _is_qa(sample: Sample) -> bool:
    return _meta(sample).get("type", "qa") == "qa"


def _chunk(sample: Sample) -> dict[str, Any] | None:
    chunk = _meta(sample).get("chunk")
    return chunk if isinstance(chunk, dict) and chunk.get("text") else None


def _knowledge_closed(sample: Sample, system_prompt: str) -> Sample:
    full = _meta(sample).get("type") in FULL_TEXT_TYPES
    return _with(sample, system_prompt, _turns(sample), "", train_on="all" if full else "assistant")


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


def mix_for_recipe(
    run: RunPaths,
    recipe: Recipe,
    ws: Workspace,
    reporter: Reporter = null_reporter,
    *,
    leaves: Iterable[str] | None = None,
    cancel: threading.Event | None = None,
) -> Composition:
    """`mix_run` as the recipe says, with the base student's self-replay set."""
    from labdesk.train.replay import student_replay

    return mix_run(
        run,
        recipe.mix,
        recipe.system_prompt,
        reporter,
        self_replay=lambda: student_replay(recipe, ws, reporter, cancel),
        leaves=leaves,
    )


def mix_run(
    run: RunPaths,
    settings: MixSettings,
    system_prompt: str,
    reporter: Reporter = null_reporter,
    *,
    self_replay: Callable[[], list[Sample]] | None = None,
    leaves: Iterable[str] | None = None,
) -> Composition:
    """Mix a run's accepted samples into ``run.mixed`` (atomic writes) and return the table.

    `self_replay` makes the base student's own answers (`labdesk.train.replay.student_replay`);
    it is called once the data is checked, since the student answers its prompts for minutes.
    A leaf of `leaves` (default: those generation started on) without accepted samples is
    refused (`check_data`).
    """
    check_data(run, leaves, settings.leaves_without_data, reporter)
    samples = load_accepted(run)
    if not samples:
        raise ConfigError(
            "no accepted samples to mix",
            where=str(run.generated),
            hint="run `labdesk generate` first",
        )
    replay = read_replay_set(Path(settings.replay_set).expanduser()) if settings.replay_set else []
    own = self_replay() if self_replay else None
    reporter(Event("mix", "start", f"mixing {len(samples)} samples", total=len(PHASES)))
    phases, composition = mix(samples, settings, system_prompt, replay, own)
    for done, phase in enumerate(PHASES, start=1):
        write_jsonl(run.phase_data(phase), phases[phase])
        reporter(Event("mix", "progress", step=phase, done=done, total=len(PHASES)))
    write_json(run.composition, composition.to_json())
    for phase in PHASES:
        parts = ", ".join(f"{r.samples} {r.source}" for r in composition.rows if r.phase == phase)
        reporter(
            Event("mix", "message", f"{phase}: {len(phases[phase])} samples ({parts or 'none'})")
        )
    reporter(Event("mix", "done", json.dumps({p: len(phases[p]) for p in PHASES})))
    return composition
