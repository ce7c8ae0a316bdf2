"""What gets asked: held-out seed questions per leaf, multiple-choice items, general questions.

Skills are judged on open answers against the seed's answer. Knowledge is scored by multiple
choice (the MMLU-branch idea): the seed's answer is the right option, the answers to the leaf's
other seed questions (then other knowledge leaves') are the distractors, and the option order
comes from a hash of the question, so the same run always asks the same items.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from labdesk.errors import LabdeskError
from labdesk.resources import package_file
from labdesk.runs import RunPaths

ItemKind = Literal["skill", "knowledge", "general"]
OPTIONS = 4
_HELDOUT_SUFFIX = ".heldout.json"


@dataclass(frozen=True)
class EvalItem:
    id: str
    leaf: str
    kind: ItemKind
    question: str
    reference: str = ""
    """The seed's answer (empty for general questions)."""
    context: str | None = None
    options: tuple[str, ...] = field(default=())
    answer_index: int = -1
    """Knowledge items: which option is right."""


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
    "answer"}, ...], "context": ...}`` or a single ``{"question", "answer", "context"}``. The leaf's
    path and kind come from the record or from the leaf's generated samples.
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


def build_items(leaves: list[HeldOutLeaf]) -> list[EvalItem]:
    """Open items for skill leaves, multiple-choice items for knowledge leaves."""
    knowledge_answers = {
        leaf.path: [answer for _, answer, _ in leaf.qa]
        for leaf in leaves
        if leaf.kind == "knowledge"
    }
    items: list[EvalItem] = []
    for leaf in leaves:
        for question, answer, context in leaf.qa:
            item_id = _stable_id(leaf.path, question, answer)
            if leaf.kind != "knowledge":
                items.append(EvalItem(item_id, leaf.path, "skill", question, answer, context))
                continue
            distractors = _distractors(leaf.path, answer, knowledge_answers)
            if not distractors:
                continue  # a single fact with nothing to confuse it with cannot be multiple choice
            options = [answer, *distractors]
            random.Random(item_id).shuffle(options)
            items.append(
                EvalItem(
                    item_id,
                    leaf.path,
                    "knowledge",
                    question,
                    answer,
                    context,
                    tuple(options),
                    options.index(answer),
                )
            )
    return items


def _distractors(leaf: str, answer: str, answers: dict[str, list[str]]) -> list[str]:
    """Other answers of the same leaf first (same topic, hardest), then of other leaves."""
    own = [a for a in answers[leaf] if a != answer]
    others = [a for path, group in sorted(answers.items()) if path != leaf for a in group]
    picked: list[str] = []
    for candidate in own + others:
        if candidate != answer and candidate not in picked:
            picked.append(candidate)
        if len(picked) == OPTIONS - 1:
            break
    return picked


def general_items(count: int) -> list[EvalItem]:
    """The first `count` bundled general questions (for the forgetting check)."""
    data = json.loads(package_file("evaluate", "general_questions.json").read_text("utf-8"))
    return [
        EvalItem(_stable_id("general", q), "general", "general", q)
        for q in data["questions"][:count]
    ]


def items_for_run(run: RunPaths, general: int) -> list[EvalItem]:
    leaves = read_heldout(run)
    if not leaves:
        raise LabdeskError(
            "this run has no held-out seed questions to evaluate on",
            where=str(run.generated),
            hint="set generate.held_out_seeds to 1 or more and run `labdesk generate` again",
        )
    return build_items(leaves) + general_items(general)
