"""Our advice on top of upstream's rules: always warnings, never part of the upstream verdict.

The limits come from the InstructLab taxonomy contributor guide: a knowledge context of at most
500 words, each question-and-answer pair at most 250 words, and all of a skill's seed examples
together about 2,300 words (longer seeds overflow the teacher's prompt during generation).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from labdesk.taxonomy.problems import Problem
from labdesk.taxonomy.safeyaml import position
from labdesk.yamlpath import format_path

CONTEXT_WORDS = 500
QA_WORDS = 250
SKILL_SEED_WORDS = 2300
ATTRIBUTION_FILE = "attribution.txt"
_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://|^[\w.-]+@[\w.-]+:", re.IGNORECASE)


def words(text: object) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _warning(
    file: str, node: yaml.Node | None, parts: list[str | int], message: str, code: str
) -> Problem:
    line, col = position(node, parts)
    return Problem("warning", message, file, line, col, _shown(parts), "labdesk", code)


def content_advice(
    data: Mapping[str, Any], schema_name: str, node: yaml.Node | None, file: str
) -> Iterator[Problem]:
    """Word limits and duplicate questions; tolerant of content the schema already rejected."""
    seeds = data.get("seed_examples")
    if not isinstance(seeds, list):
        return
    seen: dict[str, list[str | int]] = {}
    skill_words = 0
    for i, seed in enumerate(seeds):
        if not isinstance(seed, Mapping):
            continue
        if schema_name == "knowledge":
            if (n := words(seed.get("context"))) > CONTEXT_WORDS:
                yield _warning(
                    file,
                    node,
                    ["seed_examples", i, "context"],
                    f"context has {n} words; the contributor guide asks for at most {CONTEXT_WORDS}",
                    "words",
                )
            qas = seed.get("questions_and_answers")
            pairs: list[tuple[list[str | int], Mapping[str, Any]]] = [
                (["seed_examples", i, "questions_and_answers", j], qa)
                for j, qa in enumerate(qas if isinstance(qas, list) else [])
                if isinstance(qa, Mapping)
            ]
        else:
            skill_words += words(seed.get("context"))
            pairs = [(["seed_examples", i], seed)]
        for parts, qa in pairs:
            n = words(qa.get("question")) + words(qa.get("answer"))
            skill_words += n if schema_name != "knowledge" else 0
            if schema_name == "knowledge" and n > QA_WORDS:
                yield _warning(
                    file,
                    node,
                    parts,
                    f"question and answer have {n} words together; keep each pair under {QA_WORDS}",
                    "words",
                )
            question = qa.get("question")
            if isinstance(question, str) and question.strip():
                # a grounded skill asks the same question of different contexts on purpose
                context = seed.get("context") if schema_name != "knowledge" else None
                key = " ".join(f"{question} {context or ''}".lower().split())
                if key in seen:
                    yield _warning(
                        file,
                        node,
                        [*parts, "question"],
                        f"duplicate question (same as {_shown(seen[key])}): the teacher learns nothing new from it",
                        "duplicate",
                    )
                else:
                    seen[key] = [*parts, "question"]
    if schema_name != "knowledge" and skill_words > SKILL_SEED_WORDS:
        yield _warning(
            file,
            node,
            ["seed_examples"],
            f"seed examples total {skill_words} words; keep them to about {SKILL_SEED_WORDS}",
            "words",
        )


def _shown(parts: list[str | int]) -> str:
    """Upstream's yq-style path: ``.seed_examples[1].question``."""
    return "." + format_path(parts)


def file_advice(
    path: Path, data: Mapping[str, Any], node: yaml.Node | None, file: str
) -> Iterator[Problem]:
    """Checks that need the leaf's folder: attribution and where its documents live."""
    attribution = path.parent / ATTRIBUTION_FILE
    if not attribution.is_file() or not attribution.read_text(errors="replace").strip():
        state = "missing" if not attribution.is_file() else "empty"
        yield Problem(
            "warning",
            f"{ATTRIBUTION_FILE} is {state}: upstream asks every leaf to credit its sources "
            "(title, link, license)",
            file,
            source="labdesk",
            code="attribution",
        )
    document = data.get("document")
    repo = document.get("repo") if isinstance(document, Mapping) else None
    if isinstance(repo, str) and repo and not _REMOTE.match(repo):
        yield Problem(
            "warning",
            f"document.repo {repo!r} is a local path: labdesk reads it, but upstream "
            "(and anyone else) cannot fetch it; push it to a public git host before submitting",
            file,
            *position(node, ["document", "repo"]),
            ".document.repo",
            "labdesk",
            "local-repo",
        )
