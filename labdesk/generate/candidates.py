"""A candidate sample as it moves through a pipeline, and the JSONL records it becomes.

Record shapes are the ones documented in `labdesk.runs`; ids and per-request seeds are derived
from the leaf, the round and the candidate's index only, so a resumed run rebuilds exactly the
candidates (and prompts, and sampling seeds) an uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from labdesk.taxonomy.leaves import Leaf, Seed

if TYPE_CHECKING:
    from labdesk.documents import Chunk
    from labdesk.documents.facts import Fact

SampleType = Literal["qa", "summary", "cloze", "seed"]
# Made by rule (cloze) or written by the user (seed): no step writes or judges them, and the
# near-duplicate check passes them (a fact's cloze questions share its sentence as their
# answer and differ in one blank by design; a seed would match itself).
GIVEN_TYPES: frozenset[SampleType] = frozenset({"cloze", "seed"})


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any parts (stable across processes, unlike `hash`)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class Candidate:
    id: str
    round: int
    index: int
    type: SampleType
    examples: list[Seed]
    """The leaf's own seeds this candidate's prompts show (a seeded draw, never held-out ones)."""
    chunk: Chunk | None = None
    fact: Fact | None = None
    """Knowledge Q&A: the sentence of `chunk` the question asks about."""
    asks: str = ""
    """Knowledge Q&A: the name or number of `fact` the question asks for ("": the fact has none)."""
    fields: dict[str, str] = field(default_factory=dict)
    """What the steps wrote so far: context, question, answer."""
    scores: dict[str, Any] = field(default_factory=dict)
    trace: list[tuple[str, str]] = field(default_factory=list)
    """(step, what it produced or said), for previews and for explaining rejections."""
    rejection: tuple[str, str] | None = None
    """(step, reason) once a step has dropped it."""

    @property
    def alive(self) -> bool:
        return self.rejection is None

    def reject(self, step: str, reason: str) -> None:
        self.rejection = (step, reason)
        self.trace.append((step, f"rejected: {reason}"))


def candidate_id(slug: str, round_: int, index: int, type_: SampleType) -> str:
    return f"{slug}/r{round_}/{type_}-{index:04d}"


def chunk_record(chunk: Chunk | None) -> dict[str, Any] | None:
    if chunk is None:
        return None
    return {
        "document": chunk.document,
        "index": chunk.index,
        "heading": chunk.heading,
        "text": chunk.text,
    }


def to_record(candidate: Candidate, leaf: Leaf, *, system: str, user: str) -> dict[str, Any]:
    """The accepted-sample shape (`labdesk.runs`); a rejected one adds `step` and `reason`."""
    metadata: dict[str, Any] = {
        "leaf": leaf.path,
        "kind": leaf.kind,
        "type": candidate.type,
        "chunk": chunk_record(candidate.chunk),
        "fact": {"topic": candidate.fact.topic, "text": candidate.fact.text, "asks": candidate.asks}
        if candidate.fact
        else None,
        "context": candidate.fields.get("context"),
        "scores": dict(candidate.scores),
        "id": candidate.id,
        "round": candidate.round,
    }
    if candidate.rejection is not None:
        metadata["step"], metadata["reason"] = candidate.rejection
    return {
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
            {"role": "assistant", "content": candidate.fields.get("answer", "")},
        ],
        "metadata": metadata,
    }
