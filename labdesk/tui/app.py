"""The labdesk app: one mode per step of the LAB flow, switched with function keys or the palette.

Start-up does only cheap work (open the workspace folder, list the taxonomy's files) so the first
screen appears at once; every heavy library is imported by the worker that first needs it.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import WorkerCancelled, WorkerFailed

from labdesk.runs import RunPaths
from labdesk.tui.work import Job
from labdesk.workspace import Workspace

if TYPE_CHECKING:
    from labdesk.tui.taxonomy_screen import TaxonomyScreen

SCREENS_HELP = {
    "guide": ("Guide", "How the LAB flow works, step by step"),
    "taxonomy": ("Taxonomy", "Browse, edit and validate qna.yaml leaves"),
    "generate": ("Generate", "Synthetic data from the teacher; browse and prune samples"),
    "train": ("Train", "Phased LoRA training with loss charts"),
    "chat": ("Chat", "Talk to the tuned model, compare with the base model"),
    "models": ("Models", "Downloaded models and what a recipe needs"),
    "run": ("Run all", "Every stage in one go; current stages are skipped"),
}


def _lazy(module: str, name: str) -> Callable[[], Screen[Any]]:
    """A mode's screen factory that imports its module when the mode is first opened."""

    def make() -> Screen[Any]:
        screen_type: type[Screen[Any]] = getattr(
            importlib.import_module(f"labdesk.tui.{module}"), name
        )
        return screen_type()

    return make


ACTIONS = [
    ("taxonomy", "new_leaf", "New leaf", "Create a qna.yaml from a template"),
    ("taxonomy", "check_all", "Check the taxonomy", "Run upstream's checks on every leaf"),
    ("generate", "start", "Start generation", "Generate samples for the ticked leaves"),
    ("train", "start", "Mix and train", "Mix the phase datasets and train every phase"),
    ("train", "resume", "Resume training", "Go on from the newest checkpoint"),
    ("train", "export", "Export for chat", "Merge, convert to GGUF and register the model"),
    ("models", "pull", "Pull models", "Download what the recipe needs"),
    ("run", "start", "Run all", "Check, generate, mix, train, export and evaluate in one go"),
]
"""Palette commands: (screen, action on it, title, help)."""


class LabdeskApp(App[None]):
    TITLE = "labdesk"
    SUB_TITLE = "LAB method, on this machine"
    CSS = """
    Screen { background: $background; }
    .pane-title { text-style: bold; color: $accent; padding: 0 1; }
    .hint { color: $text-muted; padding: 0 1; }
    .toolbar { height: auto; margin-top: 1; }
    .toolbar > * { margin-right: 1; }
    /* compact one-line buttons: three fit a side pane of 28 columns */
    .toolbar > Button { min-width: 0; padding: 0; }
    """
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "guide": _lazy("guide_screen", "GuideScreen"),
        "taxonomy": _lazy("taxonomy_screen", "TaxonomyScreen"),
        "generate": _lazy("generate_screen", "GenerateScreen"),
        "train": _lazy("train_screen", "TrainScreen"),
        "chat": _lazy("chat_screen", "ChatScreen"),
        "models": _lazy("models_screen", "ModelsScreen"),
        "run": _lazy("run_screen", "RunScreen"),
    }
    DEFAULT_MODE = "taxonomy"
    """Opened first, straight away (no blank screen before it)."""
    # The function keys are on every screen's mode bar: the footer keeps each screen's own keys.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "switch_mode('guide')", "Guide", show=False),
        Binding("f2", "switch_mode('taxonomy')", "Taxonomy", show=False),
        Binding("f3", "switch_mode('generate')", "Generate", show=False),
        Binding("f4", "switch_mode('train')", "Train", show=False),
        Binding("f5", "switch_mode('chat')", "Chat", show=False),
        Binding("f6", "switch_mode('models')", "Models", show=False),
        Binding("f7", "switch_mode('run')", "Run all", show=False),
        Binding("f8", "pick_run", "Pick a run", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    recipe_name: reactive[str] = reactive("")
    """The recipe the generate, train, chat and models screens use (shared, changeable)."""
    run_name: reactive[str] = reactive("")
    """The run every screen works on: by default named after the recipe, as the CLI names it."""

    def __init__(
        self,
        *,
        home: Path | None = None,
        recipe: str = "demo",
        run: str | None = None,
        mode: str | None = None,
        snapshot: bool = False,
        chat_seed: int | None = None,
    ) -> None:
        from labdesk.runindex import default_run_name

        super().__init__()
        self.snapshot = snapshot
        """Show nothing that changes between identical runs (free memory, timings): for tests."""
        self.chat_seed = chat_seed
        """Sample chat answers from this seed (reproducible answers, as `labdesk chat --seed 1`)."""
        self.workspace = Workspace.open(home)
        self.taxonomy_root = self.workspace.ensure_taxonomy()
        self.set_reactive(LabdeskApp.recipe_name, recipe)
        self.set_reactive(LabdeskApp.run_name, run or default_run_name(recipe))
        self._start_mode = mode or self.DEFAULT_MODE
        self._quitting = False
        self.jobs: list[Job] = []
        """Long core calls in flight; quitting stops each at its next safe point."""
        self.taxonomy_screen: TaxonomyScreen | None = None
        """Set by the taxonomy screen: quitting asks it about unsaved edits."""

    async def on_mount(self) -> None:
        if self._start_mode != self.current_mode:
            await self.switch_mode(self._start_mode)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # A blinking cursor is drawn or not depending on when the screen is captured.
        if self.snapshot and hasattr(event.widget, "cursor_blink"):
            event.widget.cursor_blink = False

    def start_job(self, name: str, run: RunPaths, *, writes_run: bool = True) -> Job:
        job = Job(name, run, writes_run=writes_run)
        self.jobs = [j for j in self.jobs if not j.finished] + [job]
        return job

    @property
    def busy(self) -> bool:
        return any(not job.finished for job in self.jobs)

    def set_recipe(self, recipe: str) -> bool:
        """Work with another recipe; a run named after the old one follows to the new one's."""
        from labdesk.runindex import default_run_name

        if self.busy:
            self.notify("stop the running work before changing the recipe", severity="warning")
            return False
        if self.run_name == default_run_name(self.recipe_name):
            self.run_name = default_run_name(recipe)
        self.recipe_name = recipe
        return True

    def set_run(self, name: str) -> bool:
        """Work on run `name`; when it recorded one of the packaged recipes, use that too."""
        from labdesk.recipes import available_recipes
        from labdesk.runindex import recorded_recipe

        if self.busy:
            self.notify("stop the running work before changing the run", severity="warning")
            return False
        self.run_name = name
        recorded = recorded_recipe(self.workspace.run_dir(name))
        if recorded in available_recipes() and recorded != self.recipe_name:
            self.recipe_name = recorded
        return True

    def action_pick_run(self) -> None:
        from labdesk.tui.widgets import RunPicker

        def picked(name: str | None) -> None:
            if name is not None and self.set_run(name):
                self.notify(f"working on run {name}")

        self.push_screen(RunPicker(), picked)

    async def action_quit(self) -> None:
        """Ask about unsaved leaf edits first (save / discard / cancel), then leave."""
        from labdesk.tui.widgets import Question

        editor = self.taxonomy_screen
        if isinstance(self.screen, Question):
            return  # a question is open: it is answered first
        if self._quitting or editor is None or not editor.unsaved():
            await self.stop_work_and_exit()
            return

        async def answered(answer: str | None) -> None:
            if answer == "discard" or (answer == "save" and editor.save_all()):
                await self.stop_work_and_exit()

        self.push_screen(editor.unsaved_question("quitting"), answered)

    async def stop_work_and_exit(self) -> None:
        """Stop running work where it can resume (generation keeps what it wrote, training
        checkpoints after its step), wait for it, then leave; a second ctrl+q leaves at once."""
        running = [job for job in self.jobs if not job.finished]
        if self._quitting or not running:
            self.exit()
            return
        self._quitting = True
        for job in running:
            job.stop()
        self.notify("stopping the running work where it can resume… (ctrl+q again: quit now)")
        for worker in list(self.workers):
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()
        self.exit()

    @property
    def run_dir(self) -> Path:
        return self.workspace.run_dir(self.run_name)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, (title, help_text) in SCREENS_HELP.items():
            yield SystemCommand(f"Open {title}", help_text, lambda m=mode: self.switch_mode(m))
        for mode, action, title, help_text in ACTIONS:
            yield SystemCommand(title, help_text, partial(self.run_in_mode, mode, action))
        yield SystemCommand(
            "Pick or create a run", "The run every screen works on (F8)", self.action_pick_run
        )

    async def run_in_mode(self, mode: str, action: str) -> None:
        """Open `mode`'s screen and run one of its actions (for the command palette)."""
        await self.switch_mode(mode)
        await self.screen.run_action(action)
