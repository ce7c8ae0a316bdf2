"""Small widgets more than one screen uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Select, Sparkline

if TYPE_CHECKING:
    from labdesk.tui.app import LabdeskApp


class RecipeSelect(Select[str]):
    """The recipe every screen works with; changing it here changes it for the whole app."""

    def __init__(self) -> None:
        from labdesk.recipes import available_recipes

        self.names = list(available_recipes())
        super().__init__([(n, n) for n in self.names], allow_blank=False, id="recipe")

    def on_mount(self) -> None:
        app: LabdeskApp = self.app  # type: ignore[assignment]
        if app.recipe_name not in self.names:  # a recipe file outside the packaged ones
            self.names.append(app.recipe_name)
            self.set_options([(Path(n).stem if n.endswith(".yaml") else n, n) for n in self.names])
        self.value = app.recipe_name

    @on(Select.Changed)
    def _changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            app: LabdeskApp = self.app  # type: ignore[assignment]
            app.recipe_name = event.value


def read_losses(path: Path) -> list[float]:
    """The `loss` of every record in a phase's loss.jsonl (a torn last line is skipped)."""
    losses: list[float] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return losses
    for line in text.splitlines():
        try:
            value = json.loads(line).get("loss")
        except (ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)):
            losses.append(float(value))
    return losses


class LossChart(Vertical):
    """A phase's training loss as a sparkline, with first / last / lowest values."""

    DEFAULT_CSS = """
    LossChart { height: auto; border: round $panel; padding: 0 1; }
    LossChart > Sparkline { height: 3; }
    LossChart > Label { color: $text-muted; }
    """

    def __init__(self, phase: str) -> None:
        super().__init__(id=f"loss-{phase}")
        self.phase = phase
        self.losses: list[float] = []

    def compose(self) -> ComposeResult:
        yield Label(f"{self.phase}: no steps yet")
        yield Sparkline([], summary_function=max)

    def set_losses(self, losses: list[float]) -> None:
        self.losses = losses
        self.query_one(Sparkline).data = losses
        if losses:
            text = (
                f"{self.phase}: {len(losses)} steps · loss {losses[0]:.3f} → {losses[-1]:.3f}"
                f" (lowest {min(losses):.3f})"
            )
        else:
            text = f"{self.phase}: no steps yet"
        self.query_one(Label).update(text)

    def add(self, loss: float) -> None:
        self.set_losses([*self.losses, loss])
