"""What gets asked: held-out questions per leaf, probe files, and the general probe.

Knowledge is asked closed-book: the question alone, never the passage, and the free answer is
right when it states the expected facts (`labdesk.evaluate.scoring`). A held-out seed's
expected facts are the names and numbers its reference answer adds to its question; a probe
file lists them. Skills are measured by how likely each model finds the held-out seed's
reference response (its mean log-probability per token): a skill learnt makes the seed's own
kind of answer likelier. The general probe (packaged, written for labdesk) measures forgetting.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from labdesk.errors import ConfigError, LabdeskError
from labdesk.names import new_terms
from labdesk.resources import package_file
from labdesk.runs import RunPaths

ItemKind = Literal["knowledge", "skill", "general"]
Expect = tuple[tuple[str, ...], ...]
"""Facts an answer must state, each as its accepted wordings."""
_HELDOUT_SUFFIX = ".heldout.json"
_PACKAGED = "labdesk:"


@dataclass(frozen=True)
class EvalItem:
    id: str
    leaf: str
    kind: ItemKind
    question: str
    expect: Expect = ()
    """Knowledge and general items: what a right answer states."""
    need: int = 0
    """How many of `expect` a right answer must state (0: all of them)."""
    reference: str = ""
    """The seed's answer (skills: the response whose likelihood is measured)."""
    context: str | None = None
    """Grounded skills: the source text, part of the request."""
    source: str = ""
    """Where the item comes from: a held-out seed, a probe file, the general probe."""


@dataclass(frozen=True)
class HeldOutLeaf:
    path: str
    kind: str
    qa: tuple[tuple[str, str, str | None], ...]
    """(question, answer, context) of every held-out seed Q&A."""


def _stable_id(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def _leaf_identity(run: RunPaths, slug: str, record: dict[str, Any]) -> tuple[str, str]:
    """(path, kind) of a leaf: from the held-out record, else from its generated samples."""
    sample: dict[str, Any] = {}
    accepted = run.accepted(slug)
    if accepted.is_file():
        with accepted.open(encoding="utf-8") as handle:
            first = handle.readline()
        sample = json.loads(first).get("metadata", {}) if first.strip() else {}
    path = str(record.get("leaf") or sample.get("leaf") or slug.replace("__", "/"))
    default = "knowledge" if path.startswith("knowledge/") else "freeform_skill"
    return path, str(record.get("kind") or sample.get("kind") or default)


def _seed_pairs(seed: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    context = seed.get("context")
    pairs = seed.get("qa") or seed.get("questions_and_answers") or [seed]
    return [(str(p["question"]).strip(), str(p["answer"]).strip(), context) for p in pairs]


def read_heldout(run: RunPaths) -> list[HeldOutLeaf]:
    """Every leaf the run generated that kept seeds back, in path order.

    A held-out file is JSON: a list of seeds as `labdesk generate` writes it, or
    ``{"leaf": path, "kind": kind, "seeds": [...]}``; a seed is ``{"qa": [{"question",
    "answer"}, ...], "context": ...}`` or a single ``{"question", "answer", "context"}``.
    """
    leaves = []
    for file in sorted(run.generated.glob(f"*{_HELDOUT_SUFFIX}")):
        slug = file.name[: -len(_HELDOUT_SUFFIX)]
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            record = data if isinstance(data, dict) else {"seeds": data}
            path, kind = _leaf_identity(run, slug, record)
            qa = [pair for seed in record["seeds"] for pair in _seed_pairs(seed)]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise LabdeskError(
                f"held-out seeds cannot be read ({exc})",
                where=str(file),
                hint="run `labdesk generate` again for this leaf",
            ) from None
        if qa:
            leaves.append(HeldOutLeaf(path, kind, tuple(qa)))
    return leaves


def key_terms(answer: str, question: str) -> Expect:
    """The names and numbers a reference answer adds to its question: what a right answer says."""
    return tuple((term,) for term in new_terms(answer, question))


def build_items(leaves: list[HeldOutLeaf]) -> list[EvalItem]:
    """Closed-book items for knowledge leaves (those with facts to check), reference items
    for skill leaves."""
    items: list[EvalItem] = []
    for leaf in leaves:
        for question, answer, context in leaf.qa:
            item_id = _stable_id(leaf.path, question, answer)
            if leaf.kind != "knowledge":
                items.append(
                    EvalItem(
                        item_id,
                        leaf.path,
                        "skill",
                        question,
                        reference=answer,
                        context=context,
                        source="held-out seed",
                    )
                )
                continue
            expect = key_terms(answer, question)
            if expect:  # an answer with no name or number to check cannot be scored fairly
                # The reference may say more than the question asks: half its terms will do.
                need = math.ceil(len(expect) / 2)
                items.append(
                    EvalItem(
                        item_id,
                        leaf.path,
                        "knowledge",
                        question,
                        expect,
                        need,
                        reference=answer,
                        source="held-out seed",
                    )
                )
    return items


def probe_items(spec: str, base: Path | None = None) -> list[EvalItem]:
    """A probe file's closed-book questions: ``{"leaf", "questions": [{"question", "expect"}]}``."""
    path = resolve_probe(spec, base)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        leaf = str(data["leaf"])
        items = []
        for row in data["questions"]:
            expect = tuple(tuple(str(a) for a in alts) for alts in row["expect"])
            question = str(row["question"])
            items.append(
                EvalItem(
                    _stable_id(leaf, question),
                    leaf,
                    "knowledge",
                    question,
                    expect,
                    source=path.name,
                )
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"probe file cannot be read ({type(exc).__name__}: {exc})",
            where=str(path),
            hint='expected {"leaf": ..., "questions": [{"question": ..., "expect": [[...]]}]}',
        ) from None
    return items


def resolve_probe(spec: str, base: Path | None = None) -> Path:
    if spec.startswith(_PACKAGED):
        return package_file(*spec[len(_PACKAGED) :].split("/"))
    path = Path(spec).expanduser()
    return path if path.is_absolute() or base is None else base / path


def general_items(count: int) -> list[EvalItem]:
    """The first `count` packaged general questions (the forgetting probe)."""
    data = json.loads(package_file("evaluate", "general_probe.json").read_text("utf-8"))
    return [
        EvalItem(
            _stable_id("general", row["question"]),
            "general",
            "general",
            row["question"],
            (tuple(row["answers"]),),
            source="general probe",
        )
        for row in data["questions"][:count]
    ]


def items_for_run(
    run: RunPaths, general: int, probes: Sequence[str] = (), base: Path | None = None
) -> list[EvalItem]:
    leaves = read_heldout(run)
    extra = [item for spec in probes for item in probe_items(spec, base)]
    if not leaves and not extra:
        raise LabdeskError(
            "this run has no held-out seed questions to evaluate on",
            where=str(run.generated),
            hint="set generate.held_out_seeds to 1 or more and run `labdesk generate` again",
        )
    return build_items(leaves) + extra + general_items(general)
