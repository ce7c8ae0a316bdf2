"""Prompt templates (package data in ``labdesk/prompts``) and how seed examples are shown.

Templates are plain text with ``$name`` placeholders (`string.Template`), so a user tuning a
prompt edits a text file, not code. Every placeholder a template uses must be given: a typo
fails loudly instead of sending "$chunk" to the teacher.
"""

from __future__ import annotations

import hashlib
from functools import cache
from string import Template

from labdesk.errors import ConfigError
from labdesk.resources import package_file
from labdesk.taxonomy.leaves import Seed


@cache
def template(name: str) -> Template:
    path = package_file("prompts", f"{name}.txt")
    if not path.is_file():
        raise ConfigError(f"prompt template '{name}' is missing", where=str(path))
    return Template(path.read_text(encoding="utf-8").strip())


def render(name: str, **values: str) -> str:
    try:
        return template(name).substitute(values)
    except KeyError as exc:
        raise ConfigError(
            f"prompt template '{name}' uses ${exc.args[0]}, which this step does not provide",
            where=str(package_file("prompts", f"{name}.txt")),
        ) from None


def templates_fingerprint() -> str:
    """A hash of every template: changing a prompt regenerates the leaves that used it."""
    digest = hashlib.sha256()
    for path in sorted(package_file("prompts").glob("*.txt")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def show_questions(seeds: list[Seed]) -> str:
    """Skill seeds as numbered example requests (freeform question step)."""
    return "\n\n".join(f"Example {n}:\n{s.qa[0].question}" for n, s in enumerate(seeds, 1))


def show_pairs(seeds: list[Seed]) -> str:
    """Skill seeds as request/response examples, with their source text when grounded."""
    blocks = []
    for n, seed in enumerate(seeds, 1):
        context = f"<context>\n{seed.context}\n</context>\n" if seed.context else ""
        qa = seed.qa[0]
        blocks.append(
            f"Example {n}:\n{context}<request>\n{qa.question}\n</request>\n"
            f"<response>\n{qa.answer}\n</response>"
        )
    return "\n\n".join(blocks)


def show_contexts(seeds: list[Seed]) -> str:
    return "\n\n".join(f"Example {n}:\n{s.context}" for n, s in enumerate(seeds, 1))


def show_context_questions(seeds: list[Seed]) -> str:
    return "\n\n".join(
        f"Example {n}:\n<context>\n{s.context}\n</context>\nRequest: {s.qa[0].question}"
        for n, s in enumerate(seeds, 1)
    )


def show_knowledge(seeds: list[Seed]) -> str:
    """Knowledge seeds: each passage with the Q&A pairs written from it."""
    blocks = []
    for n, seed in enumerate(seeds, 1):
        pairs = "\n".join(f"Q: {qa.question}\nA: {qa.answer}" for qa in seed.qa)
        blocks.append(f"Example {n}:\n<passage>\n{seed.context}\n</passage>\n{pairs}")
    return "\n\n".join(blocks)
