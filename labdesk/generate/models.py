"""The teacher and the judge of a run: what generation needs of a model, and loading them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from labdesk.generate.steps import Role
from labdesk.models.types import GenRequest, GenResult, ScoreRequest, ScoreResult

if TYPE_CHECKING:
    from labdesk.recipes import ModelRef, Recipe
    from labdesk.workspace import Workspace


class TextModel(Protocol):
    """What generation needs of a model: labdesk's Engine, a model behind a server (RemoteModel),
    or a benchmark's baseline."""

    n_ctx: int

    @property
    def stop(self) -> tuple[str, ...]:
        """Strings that end an assistant turn in the model's chat template."""

    def generate(
        self,
        requests: Sequence[GenRequest],
        *,
        on_result: Callable[[int, GenResult], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenResult]: ...

    def score(
        self, requests: Sequence[ScoreRequest], *, cancel: threading.Event | None = None
    ) -> list[ScoreResult]: ...

    def chat_prompt(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def can_score(self) -> bool:
        """Whether `score` works (a server may give no prompt log-probabilities)."""


@dataclass(frozen=True)
class Models:
    teacher: TextModel
    judge: TextModel
    teacher_name: str
    judge_name: str

    def get(self, role: Role) -> TextModel:
        return self.teacher if role == "teacher" else self.judge

    def name(self, role: Role) -> str:
        return self.teacher_name if role == "teacher" else self.judge_name


def load_models(recipe: Recipe, ws: Workspace) -> Models:
    """The teacher and the judge (the teacher itself unless the recipe names a judge)."""
    teacher, teacher_name = _load(recipe.teacher, recipe, ws)
    if recipe.judge is None:
        return Models(teacher, teacher, teacher_name, teacher_name)
    judge, judge_name = _load(recipe.judge, recipe, ws)
    return Models(teacher, judge, teacher_name, judge_name)


def _load(ref: ModelRef, recipe: Recipe, ws: Workspace) -> tuple[TextModel, str]:
    """A model in process (GGUF through llama.cpp) or behind an endpoint, and its identity."""
    if ref.endpoint:
        from labdesk.models.remote import RemoteModel

        remote = RemoteModel.open(ref, recipe.remote, recipe.engine.n_ctx)
        return remote, f"{ref.endpoint}#{remote.served_as}"
    from labdesk.models.engine import Engine
    from labdesk.models.store import resolve_model

    path = resolve_model(ref, ws, want="gguf")
    return Engine.load(path, recipe.engine), model_identity(ref, path)


def model_identity(ref: ModelRef, path: Path) -> str:
    """What names a model for the manifest: where it comes from and the file's size."""
    size = path.stat().st_size if path.exists() else -1
    return f"{ref.label()}@{ref.revision or ''}:{ref.sha256 or ''}:{path.name}:{size}"
