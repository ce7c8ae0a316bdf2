"""Helpers for the generation tests: the test recipe, a taxonomy copy, a prompt recorder."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from labdesk.models.types import GenRequest, GenResult, ScoreRequest, ScoreResult
from labdesk.recipes import Recipe, load_recipe
from labdesk.resources import data_dir

# SmolLM2-135M-Instruct writes real text, so every pipeline accepts some candidates and rejects
# others; small budgets keep each test to a minute or so on two cores.
RECIPE = """\
name: generate-test
teacher: {{path: {gguf}}}
student: {{builtin: tiny-student}}
engine:
  n_ctx: 2048
  parallel: 4
generate:
  samples_per_leaf: 2
  questions_per_fact: 1
  held_out_seeds: 1
  short_tokens: 40
  max_new_tokens: 96
  examples_per_prompt: 1
  chunk_tokens: 400
  augmentations: [summary, cloze]
  max_rounds: 2
  temperature: 0.5
  seed: 7
"""


def write_recipe(folder: Path, gguf: Path, *overrides: str) -> Recipe:
    path = folder / "generate-test.yaml"
    path.write_text(RECIPE.format(gguf=gguf), encoding="utf-8")
    return load_recipe(str(path), list(overrides))


def copy_taxonomy(dest: Path) -> Path:
    """The sample taxonomy, its knowledge leaf on one of its three documents (the lighthouse:
    a third of the facts, so a test's generation takes a third of the time)."""
    shutil.copytree(data_dir("taxonomy"), dest)
    for qna in (dest / "knowledge").rglob("qna.yaml"):
        text = qna.read_text(encoding="utf-8")
        qna.write_text(text.replace('- "*.md"', '- "gullstone-lighthouse.md"'), encoding="utf-8")
    return dest


class RecordingModel:
    """The real engine, with every prompt it is sent written down (and who asked)."""

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self.n_ctx: int = engine.n_ctx  # type: ignore[attr-defined]
        self.prompts: list[tuple[str | None, str]] = []
        """Generation requests (prompt and seed), with the leaf that asked."""
        self.scored: list[tuple[str | None, str]] = []
        """Score requests, whole (prompt and continuation), with the leaf that asked."""
        self.leaf: str | None = None

    def generate(
        self,
        requests: Sequence[GenRequest],
        *,
        on_result: Callable[[int, GenResult], None] | None = None,
        cancel: object = None,
    ) -> list[GenResult]:
        # the seed too: two candidates may send the same text, each its own request
        self.prompts += [(self.leaf, f"{r.prompt}\x00seed {r.seed}") for r in requests]
        return self.engine.generate(requests, on_result=on_result, cancel=cancel)  # type: ignore[attr-defined,no-any-return]

    def chat_prompt(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return self.engine.chat_prompt(messages, add_generation_prompt)  # type: ignore[attr-defined,no-any-return]

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)  # type: ignore[attr-defined,no-any-return]

    def can_score(self) -> bool:
        return self.engine.can_score()  # type: ignore[attr-defined,no-any-return]

    def score(
        self, requests: Sequence[ScoreRequest], *, cancel: object = None
    ) -> list[ScoreResult]:
        self.scored += [(self.leaf, r.prompt + r.continuation) for r in requests]
        return self.engine.score(requests, cancel=cancel)  # type: ignore[attr-defined,no-any-return]

    @property
    def stop(self) -> tuple[str, ...]:
        return self.engine.stop  # type: ignore[attr-defined,no-any-return]
