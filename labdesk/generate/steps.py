"""The two kinds of pipeline step, and the JSON schemas that constrain the models' replies.

An `Ask` step sends one prompt per live candidate to the teacher or the judge (all of a leaf's
candidates in one batch, so the engine's parallel slots stay full) and reads the schema-valid
reply back into the candidate, or rejects it. A `Check` step is model-free and runs over the
live candidates in index order, so its decisions (duplicates, above all) are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from labdesk.generate.candidates import Candidate, SampleType
from labdesk.taxonomy.leaves import Seed

Role = Literal["teacher", "judge"]
Variables = Callable[[Candidate], dict[str, str]]
ShowExamples = Callable[[list[Seed]], str]
Reader = Callable[[Candidate, Any], str | None]
"""Stores a reply in the candidate; returns a rejection reason, or None to keep it."""


@dataclass(frozen=True)
class Ask:
    name: str
    role: Role
    templates: Mapping[SampleType, str]
    """Template per candidate type; candidates of other types skip the step."""
    schema: Callable[[int], dict[str, Any]]
    """The reply's schema given a length budget in characters (so strings close in time)."""
    variables: Variables
    read: Reader
    examples: ShowExamples | None = None
    """How the candidate's seed examples are shown as `$examples` (dropped one by one to fit)."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Candidate], str | None]
    types: frozenset[SampleType] = frozenset({"qa", "summary", "key_facts"})


Step = Ask | Check


# -- schemas --------------------------------------------------------------------------------


def strings(budget: int, **shares: float) -> dict[str, Any]:
    """An object of non-empty strings; each may use `share` of the character budget."""
    return {
        "type": "object",
        "properties": {
            name: {"type": "string", "minLength": 1, "maxLength": max(16, int(budget * share))}
            for name, share in shares.items()
        },
        "required": list(shares),
    }


def verdict_schema(budget: int) -> dict[str, Any]:
    # The reason comes first: the judge explains, then decides (its verdict is conditioned on it).
    return {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "minLength": 1, "maxLength": max(16, budget)},
            "verdict": {"enum": ["yes", "no"]},
        },
        "required": ["reason", "verdict"],
    }


def score_schema(budget: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "minLength": 1, "maxLength": max(16, budget)},
            "score": {"enum": [1, 2, 3]},
        },
        "required": ["reason", "score"],
    }


# -- readers --------------------------------------------------------------------------------


def store(*names: str, into: Mapping[str, str] | None = None) -> Reader:
    """A reader that copies reply fields into the candidate (`into` renames them)."""

    def read(candidate: Candidate, value: Any) -> str | None:
        for name in names:
            text = str(value[name]).strip()
            target = (into or {}).get(name, name)
            candidate.fields[target] = text
            candidate.trace.append((target, text))
        return None

    return read


def require_yes(what: str) -> Reader:
    """A judge reader: keep on "yes", reject on "no" with the judge's reason."""

    def read(candidate: Candidate, value: Any) -> str | None:
        reason = str(value["reason"]).strip()
        candidate.scores[what] = value["verdict"]
        candidate.trace.append((what, f"{value['verdict']}: {reason}"))
        return None if value["verdict"] == "yes" else f"not {what}: {reason}"

    return read


def require_score(what: str, minimum: int) -> Reader:
    def read(candidate: Candidate, value: Any) -> str | None:
        reason = str(value["reason"]).strip()
        score = int(value["score"])
        candidate.scores[what] = score
        candidate.trace.append((what, f"{score}/3: {reason}"))
        return None if score >= minimum else f"{what} {score} < {minimum}: {reason}"

    return read
