"""The generate screen: pick recipe and leaves, run the teacher and judge, watch and prune samples.

Generation is `labdesk.generate.run_generation` in a worker. Pause holds the worker at its next
progress event; cancel stops it after the current step, and starting again resumes where it
stopped (the core keeps a manifest and a reply cache per leaf).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Checkbox,
    DataTable,
    Footer,
    Label,
    RichLog,
    Select,
    SelectionList,
    Static,
)

from labdesk.errors import Cancelled, LabdeskError
from labdesk.pathtext import tail_path
from labdesk.runs import RunPaths
from labdesk.tui.jsonl_view import JsonlView
from labdesk.tui.widgets import ModeBar, RecipeSelect
from labdesk.tui.work import CoreEvent, Job, JobScreen, notify_error

if TYPE_CHECKING:
    from labdesk.generate import GenerationReport
    from labdesk.taxonomy import Leaf, Taxonomy

PREVIEW_CANDIDATES = 3
SKIPPED = " (skip_leaves)"  # marks a leaf the recipe leaves out, in the list of leaves


class SampleDetail(ModalScreen[None]):
    """One sample, in full."""

    DEFAULT_CSS = """
    SampleDetail { align: center middle; }
    SampleDetail > VerticalScroll {
        width: 90%; height: 85%; border: thick $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("enter", "dismiss", "Close", show=False),
    ]

    def __init__(self, title: str, record: Any) -> None:
        super().__init__()
        self.title_text = title
        self.record = record

    def compose(self) -> ComposeResult:
        from rich.markup import escape

        with VerticalScroll():
            yield Label(escape(self.title_text), classes="pane-title")
            messages = self.record.get("messages") if isinstance(self.record, dict) else None
            for message in messages or []:
                role = escape(str(message.get("role", "")))
                yield Static(f"[b]{role}[/b]\n{escape(str(message.get('content', '')))}\n")
            meta = self.record.get("metadata") if isinstance(self.record, dict) else self.record
            yield Static(escape(json.dumps(meta, indent=2, ensure_ascii=False)), classes="hint")


def leaf_needs_work(leaf: Leaf, paths: RunPaths) -> bool:
    """A leaf never generated, left incomplete, or edited since (what the core would redo)."""
    try:
        manifest = json.loads(paths.leaf_manifest(leaf.slug).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    inputs = manifest.get("inputs") or {}
    return not manifest.get("complete") or inputs.get("content_hash") != leaf.content_hash


COLUMNS = (
    ("leaf", "leaf", 0),
    ("status", "step", 12),
    ("progress", "done", 5),
    ("accepted", "✓", 3),
    ("rejected", "✗", 3),
    ("speed", "tok/s", 5),
)
"""The leaf table's columns: (key, label, width); the leaf gets what the others leave. The
step column says where a leaf is: waiting, the pipeline step it is in, then done."""


class GenerateScreen(JobScreen):
    DEFAULT_CSS = """
    GenerateScreen #setup {
        width: 32%; min-width: 28; max-width: 48; border-right: vkey $panel; padding: 0 1;
    }
    GenerateScreen #leaves { height: 1fr; min-height: 3; }
    GenerateScreen #main { width: 1fr; }
    GenerateScreen #leaf-table { height: auto; max-height: 12; }
    GenerateScreen #events { height: 1fr; min-height: 3; max-height: 8; border-top: hkey $panel; }
    GenerateScreen #status { height: 1; padding: 0 1; }
    GenerateScreen #sample-bar { height: auto; padding: 0 1; }
    GenerateScreen #sample-file { width: 1fr; }
    GenerateScreen #samples { min-height: 3; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "start", "Start"),
        Binding("ctrl+z", "pause", "Pause/resume"),
        Binding("ctrl+x", "cancel", "Cancel"),
    ]
    JOB_BUTTONS = ("#pause", "#cancel")

    def __init__(self) -> None:
        super().__init__()
        self.taxonomy: Taxonomy | None = None
        self.changed: set[str] = set()
        """Leaves never generated, left incomplete, or edited since, in the current run."""
        self.skipped: set[str] = set()
        """Leaves the recipe's `skip_leaves` leaves out: listed, never ticked for the user."""

    def compose(self) -> ComposeResult:
        yield ModeBar("generate")
        with Horizontal():
            with Vertical(id="setup"):
                yield Label("Recipe", classes="pane-title")
                yield RecipeSelect()
                yield Label("Leaves to generate", classes="pane-title")
                yield SelectionList[str](id="leaves")
                yield Checkbox(
                    "Preview only",
                    id="preview",
                    tooltip=f"try {PREVIEW_CANDIDATES} samples per leaf and keep none",
                )
                with Horizontal(classes="toolbar"):
                    yield Button("Start", id="start", variant="primary", compact=True)
                    yield Button("Pause", id="pause", disabled=True, compact=True)
                    yield Button(
                        "Cancel", id="cancel", variant="error", disabled=True, compact=True
                    )
            with Vertical(id="main"):
                yield Static("idle", id="status")
                table: DataTable[str] = DataTable(id="leaf-table", cursor_type="row")
                yield table
                yield RichLog(id="events", markup=True, wrap=True, max_lines=500)
                with Horizontal(id="sample-bar"):
                    yield Select[str]([], prompt="samples file", id="sample-file")
                yield JsonlView(id="samples")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#leaf-table", DataTable)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width or 12)
        self._load_leaves()
        self.refresh_sample_files()
        self.query_one("#samples", JsonlView).write_guard = self._hold_run_to_drop

    def _hold_run_to_drop(self) -> AbstractContextManager[None]:
        from labdesk.runlock import hold_run

        return hold_run(self.paths, "the labdesk app: dropping samples")

    def on_screen_resume(self) -> None:
        if self.is_mounted and self.job is None:
            self._load_leaves()

    def _run_changed(self) -> None:
        if self.job is None:
            self.query_one("#leaf-table", DataTable).clear()
            self.query_one("#status", Static).update("idle")
            self._load_leaves()
            self.refresh_sample_files()

    def on_resize(self) -> None:
        self._fit_leaf_column()
        if self.taxonomy is not None:
            self._show_leaves(self.taxonomy, self.changed, self.skipped, keep_ticks=True)

    def _fit_leaf_column(self) -> None:
        """The leaf column takes the table's width that the other columns leave (each column
        also takes 2 cells of padding)."""
        table = self.query_one("#leaf-table", DataTable)
        others = sum(width + 2 for _, _, width in COLUMNS[1:])
        leaf = table.columns.get("leaf")  # type: ignore[call-overload]
        if leaf is not None:
            leaf.width = max(10, table.size.width - others - 2)
            leaf.auto_width = False
            table._require_update_dimensions = True  # DataTable re-measures on its next idle
            table.refresh()

    def _leaf_text(self, path: str) -> str:
        table = self.query_one("#leaf-table", DataTable)
        leaf = table.columns.get("leaf")  # type: ignore[call-overload]
        return tail_path(path, leaf.width if leaf is not None else 30)

    # leaves --------------------------------------------------------------------------------
    def _recipe_changed(self) -> None:
        if self.job is None:
            self._load_leaves()  # another recipe may skip other leaves

    @work(thread=True, exclusive=True, group="generate-leaves")
    def _load_leaves(self) -> None:
        from labdesk.generate.selection import is_skipped
        from labdesk.recipes import load_recipe
        from labdesk.taxonomy import load_taxonomy

        try:
            taxonomy = load_taxonomy(self.app.taxonomy_root)
        except Exception as exc:
            notify_error(self.app, exc)
            return
        try:
            skip = load_recipe(self.app.recipe_name).skip_leaves
        except LabdeskError:  # a broken recipe is reported, with its fix, when a job uses it
            skip = []
        skipped = {leaf.path for leaf in taxonomy.leaves if is_skipped(leaf, skip)}
        changed = {
            leaf.path
            for leaf in taxonomy.leaves
            if leaf.path not in skipped and leaf_needs_work(leaf, self.paths)
        }
        self.app.call_from_thread(self._show_leaves, taxonomy, changed, skipped)

    def _show_leaves(
        self,
        taxonomy: Taxonomy,
        changed: set[str],
        skipped: set[str],
        *,
        keep_ticks: bool = False,
    ) -> None:
        """List the leaves, the changed ones ticked (or, redrawn at a new width, as they were);
        a leaf the recipe skips says so (generating it is refused)."""
        self.taxonomy, self.changed, self.skipped = taxonomy, changed, skipped
        leaves = self.query_one("#leaves", SelectionList)
        kept = set(leaves.selected) if keep_ticks else changed
        width = max(8, leaves.size.width - 6)  # the tick box and the scrollbar
        leaves.clear_options()
        for leaf in taxonomy.leaves:
            # shown by its distinguishing end; the full path is the option's value
            if leaf.path in skipped:
                path = tail_path(leaf.path, max(4, width - len(SKIPPED)))
                label = f"[dim]{escape(path)}{SKIPPED}[/]"
            else:
                label = escape(tail_path(leaf.path, width))
            leaves.add_option((label, leaf.path, leaf.path in kept))
        invalid = len({p.file for p in taxonomy.errors})
        if invalid:
            self.log_line(f"[yellow]{invalid} invalid leaf file(s) left out: fix them on F2[/]")

    # running -------------------------------------------------------------------------------
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        chosen = list(self.query_one("#leaves", SelectionList).selected)
        if not chosen:
            self.notify("tick at least one leaf", severity="warning")
            return
        preview = self.query_one("#preview", Checkbox).value
        # a preview writes nothing into the run: it needs no lock
        if (job := self.begin_job("generate", writes_run=not preview)) is None:
            return
        table = self.query_one("#leaf-table", DataTable)
        table.clear()
        self._fit_leaf_column()
        for path in chosen:
            table.add_row(self._leaf_text(path), "waiting", "", "0", "0", "", key=path)
        self.query_one("#status", Static).update("loading the teacher…")
        self._generate(job, self.app.recipe_name, chosen, preview)

    @on(Button.Pressed, "#pause")
    def action_pause(self) -> None:
        self.toggle_pause()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.stop_job("#status", "stopping after the current step…")

    def set_running(self, running: bool) -> None:
        super().set_running(running)
        self.query_one("#samples", JsonlView).writable = not running

    @work(thread=True, exclusive=True, group="generate")
    def _generate(self, job: Job, recipe_name: str, leaves: list[str], preview: bool) -> None:
        from labdesk.generate import run_generation
        from labdesk.taxonomy import load_taxonomy

        report: GenerationReport | None = None
        try:
            recipe = job.recipe(recipe_name)
            taxonomy = load_taxonomy(self.app.taxonomy_root)
            report = run_generation(
                taxonomy,
                recipe,
                job.run.root,
                ws=self.app.workspace,
                leaves=leaves,
                preview=PREVIEW_CANDIDATES if preview else None,
                reporter=job.reporter(self),
                cancel=job.cancel,
            )
        except Cancelled:
            self.app.call_from_thread(
                self.log_line, "[yellow]stopped: what was generated is kept; Start resumes[/]"
            )
        except Exception as exc:
            notify_error(self.app, exc)
        self.app.call_from_thread(self._finished, report)

    def _finished(self, report: GenerationReport | None) -> None:
        self.end_job()
        if report is not None:
            status = f"done: {report.accepted} accepted, {report.rejected} rejected"
            for leaf in report.leaves:
                for sample in leaf.samples:
                    preview = escape(json.dumps(sample, ensure_ascii=False)[:300])
                    self.log_line(f"[dim]{escape(leaf.leaf)}[/] preview: {preview}")
                if leaf.note:
                    self.log_line(f"[yellow]{escape(leaf.leaf)}: {escape(leaf.note)}[/]")
                elif leaf.rejected:  # why samples were dropped, by step, with examples
                    self.log_line(f"[dim]{escape(leaf.leaf)}[/] {escape(leaf.explain())}")
        else:
            status = "stopped"
        self.query_one("#status", Static).update(status)
        self.refresh_sample_files()
        self._load_leaves()

    @on(CoreEvent)
    def _progress(self, message: CoreEvent) -> None:
        event = message.event
        table = self.query_one("#leaf-table", DataTable)
        if event.leaf and event.leaf in table.rows:
            row = event.leaf
            if event.kind == "done":
                table.update_cell(row, "status", "done")
            elif event.step:
                table.update_cell(row, "status", event.step)
            if event.done is not None and event.total:
                table.update_cell(row, "progress", f"{event.done}/{event.total}")
            if event.accepted is not None:
                table.update_cell(row, "accepted", str(event.accepted))
            if event.rejected is not None:
                table.update_cell(row, "rejected", str(event.rejected))
            if "tok/s" in event.metrics:
                table.update_cell(row, "speed", f"{event.metrics['tok/s']:.0f}")
        elif event.kind == "progress" and event.total:
            self.query_one("#status", Static).update(f"leaves {event.done}/{event.total}")
        if event.message and event.kind != "progress":
            colour = {"warning": "yellow", "done": "green"}.get(event.kind, "default")
            where = f"[b]{escape(event.leaf)}[/b] " if event.leaf else ""
            self.log_line(f"{where}[{colour}]{escape(event.message)}[/]")
        if event.leaf and event.kind == "done":
            self.refresh_sample_files()
        view = self.query_one("#samples", JsonlView)
        if (
            event.leaf
            and view.index
            and view.index.path.name.startswith(event.leaf.replace("/", "__"))
        ):
            view.reload()

    def log_line(self, text: str) -> None:
        self.query_one("#events", RichLog).write(text)

    # samples -------------------------------------------------------------------------------
    def refresh_sample_files(self) -> None:
        folder = self.paths.generated
        files = (
            sorted(p for p in folder.glob("*.jsonl") if not p.name.endswith(".dropped.jsonl"))
            if folder.is_dir()
            else []
        )
        select = self.query_one("#sample-file", Select)
        current = select.value
        options = [(self._file_label(p), str(p)) for p in files]
        select.set_options(options)
        values = [value for _, value in options]
        if current in values:
            select.value = current
        elif values:
            select.value = values[0]  # show something to browse as soon as there is something

    @staticmethod
    def _file_label(path: Path) -> str:
        name = path.name.removesuffix(".jsonl")
        rejected = name.endswith(".rejected")
        leaf = name.removesuffix(".rejected").replace("__", "/")
        return f"{'✗ rejected' if rejected else '✓ accepted'}  {leaf}"

    @on(Select.Changed, "#sample-file")
    def _pick_file(self, event: Select.Changed) -> None:
        view = self.query_one("#samples", JsonlView)
        if isinstance(event.value, str):
            view.open(Path(event.value))
            view.focus()

    @on(JsonlView.Opened)
    def _open_sample(self, event: JsonlView.Opened) -> None:
        self.app.push_screen(SampleDetail(f"sample {event.index + 1}", event.record))

    @on(JsonlView.Rewritten)
    def _rewritten(self, event: JsonlView.Rewritten) -> None:
        self.notify(f"dropped {event.dropped} sample(s); kept in .dropped.jsonl beside the file")
