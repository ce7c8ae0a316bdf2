"""Helpers for the generation tests: the test recipe, a taxonomy copy, a prompt recorder."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from labdesk.models.types import GenRequest, GenResult
from labdesk.recipes import Recipe, load_recipe
from labdesk.resources import data_dir

# stories260K has no chat template of its own; a plain one keeps prompts readable.
RECIPE = """\
name: generate-test
teacher: {{path: {gguf}}}
student: {{builtin: tiny-student}}
engine:
  n_ctx: 1408
  parallel: 4
  chat_template: "{{% for m in messages %}}{{{{ m['role'] }}}}: {{{{ m['content'] }}}}\\n{{% endfor %}}assistant: "
generate:
  samples_per_leaf: 2
  held_out_seeds: 1
  max_new_tokens: 48
  judge_max_tokens: 40
  min_pair_score: 1
  examples_per_prompt: 1
  chunk_tokens: 250
  augmentations: [summary]
  max_rounds: 2
  temperature: 0.8
  seed: 7
  # stories260K's favourite words: a recipe blocklist that rejects some samples (not all) in
  # every pipeline, so each one shows its rejected-sample records.
  blocklist: [Lily, play, love]
"""


def write_recipe(folder: Path, gguf: Path, *overrides: str) -> Recipe:
    path = folder / "generate-test.yaml"
    path.write_text(RECIPE.format(gguf=gguf), encoding="utf-8")
    return load_recipe(str(path), list(overrides))


def copy_taxonomy(dest: Path) -> Path:
    shutil.copytree(data_dir("taxonomy"), dest)
    return dest


class RecordingModel:
    """The real engine, with every prompt it is sent written down (and who asked)."""

    def __init__(self, engine: object) -> None:
        self.engine = engine
        self.n_ctx: int = engine.n_ctx  # type: ignore[attr-defined]
        self.prompts: list[tuple[str | None, str]] = []
        self.leaf: str | None = None

    def generate(
        self,
        requests: Sequence[GenRequest],
        *,
        on_result: Callable[[int, GenResult], None] | None = None,
        cancel: object = None,
    ) -> list[GenResult]:
        self.prompts += [(self.leaf, r.prompt) for r in requests]
        return self.engine.generate(requests, on_result=on_result, cancel=cancel)  # type: ignore[attr-defined,no-any-return]

    def chat_prompt(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return self.engine.chat_prompt(messages, add_generation_prompt)  # type: ignore[attr-defined,no-any-return]

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)  # type: ignore[attr-defined,no-any-return]


def stories_path() -> Path:
    return Path(__file__).resolve().parents[3] / "shared/fixtures/stories260K/stories260K.gguf"
