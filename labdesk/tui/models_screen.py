"""The models screen: what is on this machine, what the recipe needs, and pulling it.

Listing and pulling are `labdesk.models.store` calls (`list_models`, `resolve_model`,
`pull_model`) run in workers; a pull reports bytes through events into a progress bar, resumes a
partial download and verifies the file's sha256.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Label, ProgressBar, Static

from labdesk.tui.widgets import ModeBar, RecipeSelect
from labdesk.tui.work import CoreEvent, Job, JobScreen, notify_error

if TYPE_CHECKING:
    from labdesk.models.store import StoredModel


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


class ModelsScreen(JobScreen):
    DEFAULT_CSS = """
    ModelsScreen #side {
        width: 32%; min-width: 28; max-width: 48; border-right: vkey $panel; padding: 0 1;
    }
    ModelsScreen #main { width: 1fr; padding: 0 1; }
    ModelsScreen DataTable { height: auto; max-height: 16; margin-bottom: 1; }
    ModelsScreen #pull-status { height: auto; }
    ModelsScreen #pull-bar { display: none; }
    ModelsScreen.-pulling #pull-bar { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+l", "pull", "Pull what is missing"),
        Binding("ctrl+r", "refresh", "Refresh"),
    ]
    IDLE_BUTTONS = ("#pull",)

    def compose(self) -> ComposeResult:
        yield ModeBar("models")
        with Horizontal():
            with Vertical(id="side"):
                yield Label("Recipe", classes="pane-title")
                yield RecipeSelect()
                yield Button("Pull what is missing", id="pull", variant="primary")
                yield Static("", id="pull-status")
                yield ProgressBar(id="pull-bar", show_eta=False)
            with Vertical(id="main"):
                yield Label("The recipe needs", classes="pane-title")
                yield DataTable(id="needs", cursor_type="row")
                yield Label("On this machine", classes="pane-title")
                yield DataTable(id="stored", cursor_type="row")
                yield Static("Serve a tuned run to other programs: [b]labdesk serve RUN[/]")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#needs", DataTable).add_columns("role", "model", "form", "status")
        self.query_one("#stored", DataTable).add_columns("model", "revision", "files", "size")
        self.action_refresh()

    def _recipe_changed(self) -> None:
        self.action_refresh()

    def action_refresh(self) -> None:
        self._survey(self.app.recipe_name)

    @work(thread=True, exclusive=True, group="models-survey")
    def _survey(self, recipe_name: str) -> None:
        from labdesk.errors import ModelError
        from labdesk.models.store import list_models, recipe_needs, resolve_model
        from labdesk.recipes import load_recipe

        try:
            recipe = load_recipe(recipe_name)
            needs = []
            for role, ref, want in recipe_needs(recipe):
                if ref.endpoint:
                    status = "served by its endpoint"
                elif ref.builtin:
                    status = "built on this machine when first used"
                else:
                    try:
                        resolve_model(ref, self.app.workspace, want=want)
                        status = "✓ here"
                    except ModelError as exc:
                        status = f"✗ missing: {exc.hint or exc.message}"
                needs.append((role, ref.label(), want, status))
            stored = list_models(self.app.workspace)
        except Exception as exc:
            notify_error(self.app, exc)
            return
        self.app.call_from_thread(self._show, needs, stored)

    def _show(self, needs: list[tuple[str, str, str, str]], stored: list[StoredModel]) -> None:
        table = self.query_one("#needs", DataTable)
        table.clear()
        for row in needs:
            table.add_row(*row)
        held = self.query_one("#stored", DataTable)
        held.clear()
        for model in stored:
            held.add_row(model.name, model.revision, str(model.files), _size(model.size))

    @on(Button.Pressed, "#pull")
    def action_pull(self) -> None:
        if (job := self.begin_job("pull", writes_run=False)) is None:
            return
        self.add_class("-pulling")
        self.query_one("#pull-status", Static).update("pulling…")
        self._pull(job, self.app.recipe_name)

    @work(thread=True, exclusive=True, group="models-pull")
    def _pull(self, job: Job, recipe_name: str) -> None:
        from labdesk.models.store import pull_model, recipe_needs
        from labdesk.recipes import load_recipe

        done: list[str] = []
        try:
            recipe = load_recipe(recipe_name)
            for role, ref, want in recipe_needs(recipe):
                if job.cancel.is_set():
                    break
                if ref.endpoint:
                    continue
                pull_model(ref, self.app.workspace, want=want, reporter=job.reporter(self))
                done.append(role)
        except Exception as exc:
            notify_error(self.app, exc)
        self.app.call_from_thread(self._pulled, done)

    def _pulled(self, done: list[str]) -> None:
        self.end_job()
        self.remove_class("-pulling")
        ready = ", ".join(done) or "nothing"
        self.query_one("#pull-status", Static).update(f"ready: {ready}")
        self.action_refresh()

    @on(CoreEvent)
    def _progress(self, message: CoreEvent) -> None:
        event = message.event
        bar = self.query_one("#pull-bar", ProgressBar)
        if event.total:
            bar.update(total=event.total, progress=event.done or 0)
        if event.step:
            size = f" {_size(event.done or 0)} of {_size(event.total)}" if event.total else ""
            self.query_one("#pull-status", Static).update(f"{event.step}{size}")
