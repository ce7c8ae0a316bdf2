"""Small widgets more than one screen uses: the mode bar, the recipe select, questions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Select, Sparkline, Static
from textual.widgets.option_list import Option

from labdesk.pathtext import tail_path

if TYPE_CHECKING:
    from labdesk.tui.app import LabdeskApp

MODES = (
    ("guide", "Guide", "Guide"),
    ("taxonomy", "Taxonomy", "Tax"),
    ("generate", "Generate", "Gen"),
    ("train", "Train", "Train"),
    ("chat", "Chat", "Chat"),
    ("models", "Models", "Models"),
    ("run", "Run all", "All"),
)
"""(mode, name, short name), in function-key order: F1 is the first."""


class ModeBar(Static):
    """The top line of every screen: the screens by function key (the open one marked) and the
    run that every screen works on (F8 picks or creates another)."""

    DEFAULT_CSS = """
    ModeBar { dock: top; height: 1; background: $panel; color: $text-muted; }
    """

    app: LabdeskApp

    def __init__(self, mode: str) -> None:
        super().__init__(id="modebar")
        self.mode = mode

    def on_mount(self) -> None:
        self.watch(self.app, "run_name", self._changed, init=False)

    def _changed(self) -> None:
        self.refresh()

    def on_resize(self) -> None:
        self.refresh()

    def render(self) -> str:
        width = self.size.width or 80
        run = self.app.run_name
        for short in (False, True):
            names = [(mode, short_name if short else name) for mode, name, short_name in MODES]
            plain = "  ".join(f"F{n} {name}" for n, (_, name) in enumerate(names, start=1))
            room = width - len(plain) - len("   F8 run ")
            if room >= min(len(run), 10):
                break
        tabs = "  ".join(
            self._tab(f"F{number} {name}", mode)
            for number, (mode, name) in enumerate(names, start=1)
        )
        run_text = escape(tail_path(run, max(room, 4)))
        return f"{tabs}   [@click=app.pick_run]F8 run [b]{run_text}[/b][/]"

    def _tab(self, text: str, mode: str) -> str:
        if mode == self.mode:
            return f"[b reverse]{text}[/]"
        return f"[@click=app.switch_mode('{mode}')]{text}[/]"


class RecipeSelect(Select[str]):
    """The recipe every screen works with; changing it here changes it for the whole app."""

    app: LabdeskApp

    def __init__(self) -> None:
        from labdesk.recipes import available_recipes

        self.names = list(available_recipes())
        super().__init__([(n, n) for n in self.names], allow_blank=False, id="recipe")

    def on_mount(self) -> None:
        self.watch(self.app, "recipe_name", self._follow)

    def _follow(self, name: str) -> None:
        # showing the app's recipe is not the person picking one: no Changed from here
        with self.prevent(Select.Changed):
            if name not in self.names:  # a recipe file outside the packaged ones
                self.names.append(name)
                options = [(Path(n).stem if n.endswith(".yaml") else n, n) for n in self.names]
                self.set_options(options)
            if self.value != name:
                self.value = name

    @on(Select.Changed)
    def _changed(self, event: Select.Changed) -> None:
        value = event.value
        changed = isinstance(value, str) and value != self.app.recipe_name
        if changed and not self.app.set_recipe(str(value)):
            self._follow(self.app.recipe_name)  # refused while work runs: show what holds


class Question(ModalScreen[str]):
    """A question with a few answers, one button each; escape gives the last answer (the one
    that changes nothing)."""

    DEFAULT_CSS = """
    Question { align: center middle; }
    Question > Vertical {
        width: 72; max-width: 95%; height: auto; max-height: 90%;
        border: thick $warning; background: $surface; padding: 1 2;
    }
    Question #text { margin-bottom: 1; }
    Question Horizontal { height: auto; }
    Question Button { margin-right: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, text: str, answers: list[tuple[str, str]], *, focus: str | None = None
    ) -> None:
        """`answers` are (id, label); `focus` is the answer focused first (default: the last)."""
        super().__init__()
        self.text = text
        self.answers = answers
        self.first = focus or answers[-1][0]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.text, id="text")
            with Horizontal():
                for answer, label in self.answers:
                    last = answer == self.answers[-1][0]
                    yield Button(
                        label, id=f"answer-{answer}", variant="default" if last else "primary"
                    )

    def on_mount(self) -> None:
        self.query_one(f"#answer-{self.first}", Button).focus()

    @on(Button.Pressed)
    def _answered(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "").removeprefix("answer-"))

    def action_cancel(self) -> None:
        self.dismiss(self.answers[-1][0])


class RunPicker(ModalScreen[str | None]):
    """Pick one of the workspace's runs (the CLI's too) or name a new one."""

    DEFAULT_CSS = """
    RunPicker { align: center middle; }
    RunPicker > Vertical {
        width: 80; max-width: 95%; height: auto; max-height: 90%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    RunPicker #runs { height: auto; max-height: 14; }
    RunPicker Horizontal { height: auto; }
    RunPicker #new-name { width: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]
    AUTO_FOCUS = "#runs"

    app: LabdeskApp

    def compose(self) -> ComposeResult:
        from labdesk.runindex import list_runs

        runs = list_runs(self.app.workspace.runs)
        options = []
        for info in runs:
            mark = "●" if info.name == self.app.run_name else " "
            made = ", ".join(info.made) or "nothing yet"
            busy = f" [yellow]in use by {escape(info.in_use_by)}[/]" if info.in_use_by else ""
            recipe = f"recipe {escape(info.recipe)} · " if info.recipe else ""
            options.append(
                Option(f"{mark} [b]{escape(info.name)}[/b] [dim]{recipe}{made}[/]{busy}", info.name)
            )
        with Vertical():
            yield Label("Runs: every screen works on the run picked here", classes="pane-title")
            if options:
                yield OptionList(*options, id="runs")
            else:
                yield Static("no runs yet", classes="hint")
            with Horizontal():
                yield Input(placeholder="a new run's name", id="new-name")
                yield Button("Create", id="create", variant="primary")

    @on(OptionList.OptionSelected, "#runs")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    @on(Input.Submitted, "#new-name")
    @on(Button.Pressed, "#create")
    def _create(self) -> None:
        from labdesk.errors import LabdeskError
        from labdesk.runindex import check_run_name

        name = self.query_one("#new-name", Input).value.strip()
        try:
            check_run_name(name)
        except LabdeskError as exc:
            self.notify(f"{exc.message}: {exc.hint}", severity="error")
            return
        self.app.workspace.run_dir(name).mkdir(parents=True, exist_ok=True)
        self.dismiss(name)


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
