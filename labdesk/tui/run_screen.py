"""The run screen: "Run all" — every stage of the flow (`labdesk.flow.run_flow`) in one go.

Stages already current are skipped and an interrupted one resumes, exactly as `labdesk run` does;
this screen only shows the stages' progress and the final summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Footer, Label, RichLog, Static

from labdesk.errors import Cancelled
from labdesk.evaluate.report import cells
from labdesk.tui.widgets import ModeBar, RecipeSelect
from labdesk.tui.work import CoreEvent, Job, JobScreen, notify_error

if TYPE_CHECKING:
    from labdesk.flow import FlowResult

STAGES = ("check", "generate", "mix", "train", "export", "evaluate")


class RunScreen(JobScreen):
    DEFAULT_CSS = """
    RunScreen #setup {
        width: 30%; min-width: 28; max-width: 44; border-right: vkey $panel; padding: 0 1;
    }
    RunScreen #main { width: 1fr; }
    RunScreen #stages { height: auto; }
    RunScreen #summary { height: auto; padding: 0 1; border: round $panel; }
    RunScreen #events { height: 1fr; border-top: hkey $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "start", "Run all"),
        Binding("ctrl+x", "stop", "Stop"),
    ]
    JOB_BUTTONS = ("#stop",)

    def compose(self) -> ComposeResult:
        yield ModeBar("run")
        with Horizontal():
            with Vertical(id="setup"):
                yield Label("Recipe", classes="pane-title")
                yield RecipeSelect()
                yield Static(
                    "Runs check → generate → mix → train → export → evaluate. Stages whose "
                    "inputs did not change are skipped; a stopped run resumes.",
                    classes="hint",
                )
                with Horizontal(classes="toolbar"):
                    yield Button("Run all", id="start", variant="primary", compact=True)
                    yield Button("Stop", id="stop", variant="error", disabled=True, compact=True)
            with Vertical(id="main"):
                yield DataTable(id="stages", cursor_type="none")
                yield Static("not started", id="summary")
                yield RichLog(id="events", markup=True, wrap=True, max_lines=500)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#stages", DataTable)
        for key in ("stage", "state", "progress", "seconds"):
            table.add_column(key, key=key)
        for stage in STAGES:
            table.add_row(stage, "—", "", "", key=stage)
        self.show_run()

    def show_run(self) -> None:
        """The stages as the run's ledger has them, whoever ran them (`labdesk run` too), and
        what the run holds."""
        from labdesk.flow import summarize
        from labdesk.runindex import stage_states

        states = stage_states(self.paths)
        table = self.query_one("#stages", DataTable)
        for stage in STAGES:
            state = {"done": "done", "running": "stopped"}.get(states.get(stage, ""), "—")
            table.update_cell(stage, "state", state)
            table.update_cell(stage, "progress", "")
            table.update_cell(stage, "seconds", "")
        summary = summary_text(summarize(self.paths, self.app.workspace)) if states else ""
        self.query_one("#summary", Static).update(
            f"run {escape(self.paths.name)}: " + (summary or "not started")
        )

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if (job := self.begin_job("run")) is None:
            return
        for stage in STAGES:
            for column, value in (("state", "waiting"), ("progress", ""), ("seconds", "")):
                self.query_one("#stages", DataTable).update_cell(stage, column, value)
        self.query_one("#summary", Static).update("running…")
        self._run(job, self.app.recipe_name)

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        self.stop_job("#summary", "stopping where the run can resume…")

    @work(thread=True, exclusive=True, group="run")
    def _run(self, job: Job, recipe_name: str) -> None:
        from labdesk.flow import run_flow

        result = None
        try:
            result = run_flow(
                job.recipe(recipe_name),
                self.app.workspace,
                run_name=job.run.name,
                taxonomy_root=self.app.taxonomy_root,
                reporter=job.reporter(self),
                cancel=job.cancel,
            )
        except Cancelled as exc:
            self.app.call_from_thread(self.log_line, f"[yellow]{escape(exc.message)}[/]")
        except Exception as exc:
            notify_error(self.app, exc)
        self.app.call_from_thread(self._finished, result)

    def _finished(self, result: FlowResult | None) -> None:
        self.end_job()
        table = self.query_one("#stages", DataTable)
        if result is None:
            self.query_one("#summary", Static).update("stopped: Run all again to resume")
            return
        for outcome in result.stages:
            table.update_cell(outcome.name, "state", outcome.status)
            table.update_cell(outcome.name, "seconds", f"{outcome.seconds:.1f}")
        self.query_one("#summary", Static).update(summary_text(result.summary))

    @on(CoreEvent)
    def _progress(self, message: CoreEvent) -> None:
        event = message.event
        table = self.query_one("#stages", DataTable)
        if self.job is None:
            pass  # late news from a finished run: its outcome is already on the table
        elif event.stage == "run" and event.step in STAGES:
            state = "up to date" if event.kind == "message" else "running"
            table.update_cell(event.step, "state", state)
        elif event.stage in STAGES and event.total:
            where = " · ".join(p for p in (event.leaf, event.step) if p)
            table.update_cell(event.stage, "progress", f"{where} {event.done or 0}/{event.total}")
        if event.message:
            colour = {"warning": "yellow", "done": "green"}.get(event.kind, "default")
            self.log_line(f"[dim]{event.stage}[/] [{colour}]{escape(event.message)}[/]")

    def log_line(self, text: str) -> None:
        self.query_one("#events", RichLog).write(text)


def summary_text(summary: dict[str, Any]) -> str:
    """The flow's summary in a few lines: data made, losses, evaluation, where the model is."""
    lines = []
    if data := summary.get("data"):
        lines.append(f"data: {data['accepted']} accepted, {data['rejected']} rejected")
    for phase, loss in summary.get("losses", {}).items():
        lines.append(f"loss {phase}: {loss['first']:.3f} → {loss['last']:.3f}")
    for row in summary.get("evaluation", []):
        base, tuned, change = cells(row)
        lines.append(f"{row['leaf']} ({row['metric']}): {base} → {tuned}, {change}")
    if summary.get("model"):
        lines.append(f"model: {summary['model']} — chat with it on F5")
    return escape("\n".join(lines)) or "nothing ran"
