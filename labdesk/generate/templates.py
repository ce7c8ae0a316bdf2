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
from labdesk.names import new_terms
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


SEPARATOR = "###"
"""Ends each example of a completion prompt (see `labdesk.generate.steps`)."""


def _one_line(text: str) -> str:
    return " ".join(text.split())


def show_fact_questions(seeds: list[Seed]) -> str:
    """Knowledge seeds as fact → question examples: each seed answer is a fact, and its question
    asks for a name or number the fact holds (or for all of it)."""
    lines = []
    for seed in seeds:
        for qa in seed.qa:
            terms = new_terms(qa.answer, qa.question)
            lines.append(
                f"Fact: {_one_line(qa.answer)}\nAnswer: {terms[0] if terms else 'all of it'}\n"
                f"Question: {_one_line(qa.question)}\n{SEPARATOR}\n"
            )
    return "".join(lines)


def show_requests(seeds: list[Seed]) -> str:
    """Skill seeds as example requests."""
    return "".join(f"Request:\n{s.qa[0].question.strip()}\n{SEPARATOR}\n" for s in seeds)


def show_contexts(seeds: list[Seed]) -> str:
    return "".join(f"Text:\n{(s.context or '').strip()}\n{SEPARATOR}\n" for s in seeds)


def show_context_requests(seeds: list[Seed]) -> str:
    return "".join(
        f"Text:\n{(s.context or '').strip()}\nRequest:\n{s.qa[0].question.strip()}\n{SEPARATOR}\n"
        for s in seeds
    )
