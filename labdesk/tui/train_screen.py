"""The train screen: the memory plan, then mix and the LoRA phases with live loss charts.

Start mixes the run's accepted samples (`labdesk.train.mix.mix_run`) and trains every phase
(`labdesk.train.phases.train_run`); Resume continues a stopped run from its newest checkpoint.
Stop asks the loop to checkpoint after the current step, so quitting mid-run loses nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Footer, Label, RichLog, Static

from labdesk.errors import Cancelled
from labdesk.runs import PHASES, RunPaths
from labdesk.tui.widgets import LossChart, ModeBar, Question, RecipeSelect, read_losses
from labdesk.tui.work import CoreEvent, Job, JobScreen, notify_error

if TYPE_CHECKING:
    from labdesk.recipes import Recipe

GIB = 2**30


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return (
        f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
        if seconds >= 3600
        else f"{seconds // 60}m{seconds % 60:02d}s"
    )


def memory_plan_text(
    recipe: Recipe,
    model_dir_config: dict[str, object],
    device: str,
    free: float | None,
    *,
    detail: bool = False,
) -> str:
    """What each phase needs at peak against what is free (the core's estimate); `detail`
    adds what the peak is made of."""
    from labdesk.memory import plan_training

    lines = [f"device {device}" + (f" · free {free / GIB:.1f} GiB" if free is not None else "")]
    for phase in recipe.train.phases:
        plan = plan_training(model_dir_config, recipe.train, phase, device)
        fits = ""
        if free is not None:
            fits = " [green]fits[/]" if plan.total <= free else " [red]does not fit[/]"
        parts = (
            f" (weights {plan.weights / GIB:.2f}, activations {plan.activations / GIB:.2f}, "
            f"logits {plan.logits / GIB:.2f})"
            if detail
            else ""
        )
        lines.append(f"{phase.name}: {plan.total / GIB:.2f} GiB{parts}{fits}")
    return "\n".join(lines)


class TrainScreen(JobScreen):
    DEFAULT_CSS = """
    TrainScreen #setup {
        width: 32%; min-width: 28; max-width: 48; border-right: vkey $panel; padding: 0 1;
    }
    TrainScreen #plan { height: auto; padding: 0 1; border: round $panel; }
    TrainScreen #main { width: 1fr; }
    TrainScreen #phases { height: auto; }
    TrainScreen #status { height: 1; padding: 0 1; }
    TrainScreen #charts { height: 1fr; min-height: 5; }
    TrainScreen #events { height: 6; max-height: 25%; border-top: hkey $panel; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+g", "start", "Mix + train"),
        Binding("ctrl+t", "resume", "Resume"),
        Binding("ctrl+z", "pause", "Pause/resume"),
        Binding("ctrl+x", "stop", "Stop (checkpoint)"),
        Binding("ctrl+k", "export", "Export"),
    ]
    IDLE_BUTTONS = ("#start", "#resume", "#export")
    JOB_BUTTONS = ("#pause", "#stop")

    def compose(self) -> ComposeResult:
        yield ModeBar("train")
        with Horizontal():
            with Vertical(id="setup"):
                yield Label("Recipe", classes="pane-title")
                yield RecipeSelect()
                yield Label("Memory plan", classes="pane-title")
                yield Static("working it out…", id="plan")
                with Horizontal(classes="toolbar"):
                    yield Button("Mix + train", id="start", variant="primary", compact=True)
                    yield Button("Resume", id="resume", compact=True)
                with Horizontal(classes="toolbar"):
                    yield Button("Pause", id="pause", disabled=True, compact=True)
                    yield Button("Stop", id="stop", variant="error", disabled=True, compact=True)
                with Horizontal(classes="toolbar"):
                    yield Button("Export for chat", id="export", compact=True)
            with Vertical(id="main"):
                yield Static("idle", id="status")
                yield DataTable(id="phases", cursor_type="row")
                with VerticalScroll(id="charts"):
                    for phase in PHASES:
                        yield LossChart(phase)
                yield RichLog(id="events", markup=True, wrap=True, max_lines=300)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#phases", DataTable)
        for key in ("phase", "state", "step", "loss", "lr", "tok/s", "memory", "ETA"):
            table.add_column(key, key=key)
        for phase in PHASES:
            table.add_row(phase, "—", "", "", "", "", "", "", key=phase)
        self.show_run()
        self._plan(self.app.recipe_name)

    def show_run(self) -> None:
        """What the current run holds: finished phases and every loss so far (whoever trained
        them: this screen, Run all, or `labdesk train`)."""
        table = self.query_one("#phases", DataTable)
        for phase in PHASES:
            folder = self.paths.phase_dir(phase)
            losses = read_losses(folder / "loss.jsonl")
            state = "done" if (folder / "done.json").is_file() else "stopped" if losses else "—"
            table.update_cell(phase, "state", state)
            table.update_cell(phase, "step", str(len(losses)) if losses else "")
            table.update_cell(phase, "loss", f"{losses[-1]:.4f}" if losses else "")
            self.query_one(f"#loss-{phase}", LossChart).set_losses(losses)

    def _recipe_changed(self) -> None:
        self._plan(self.app.recipe_name)

    @work(thread=True, exclusive=True, group="train-plan")
    def _plan(self, recipe_name: str) -> None:
        import json

        from labdesk.recipes import load_recipe
        from labdesk.train.phases import resolve_student

        try:
            recipe = load_recipe(recipe_name)
            student = resolve_student(recipe.student, self.app.workspace)
            config = json.loads((student / "config.json").read_text(encoding="utf-8"))
            device = "cpu"
            if recipe.train.backend != "mlx":
                from labdesk.train.torch_backend import pick_device

                device = pick_device()
            from labdesk.memory import available_memory

            free = None if self.app.snapshot else available_memory(device)
            config = config.get("text_config", config)
            text = memory_plan_text(recipe, config, device, free)
            detail = memory_plan_text(recipe, config, device, free, detail=True)
        except Exception as exc:
            notify_error(self.app, exc)
            text = detail = "[red]no plan: see the notification[/]"
        self.app.call_from_thread(self._show_plan, text, detail)

    def _show_plan(self, text: str, detail: str) -> None:
        plan = self.query_one("#plan", Static)
        plan.update(text)
        plan.tooltip = detail

    # running -------------------------------------------------------------------------------
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        """Mix and train; first ask when leaves of the taxonomy have no accepted samples."""
        if self.job is None:
            self.query_one("#status", Static).update("checking the run's data…")
            self._check_data(self.paths)

    @work(thread=True, exclusive=True, group="train-check")
    def _check_data(self, run: RunPaths) -> None:
        """The leaves the recipe works on (not those its skip_leaves leaves out), as `labdesk
        mix` takes them, and which of them have no accepted samples."""
        from labdesk.recipes import load_recipe
        from labdesk.runs import leaves_without_data
        from labdesk.taxonomy import load_taxonomy
        from labdesk.train.mix import leaves_to_mix

        try:
            skip = load_recipe(self.app.recipe_name).skip_leaves
            leaves = leaves_to_mix(load_taxonomy(self.app.taxonomy_root).leaves, skip, run)
        except Exception as exc:
            notify_error(self.app, exc)
            self.app.call_from_thread(self.query_one("#status", Static).update, "idle")
            return
        missing = leaves_without_data(run, leaves)
        self.app.call_from_thread(self._ask_or_train, leaves, missing)

    def _ask_or_train(self, leaves: list[str], missing: list[str]) -> None:
        self.query_one("#status", Static).update("idle")
        if not missing:
            self._begin(resume=False, leaves=leaves)
            return
        names = "\n".join(f"  • {escape(leaf)}" for leaf in missing[:12])
        more = f"\n  … and {len(missing) - 12} more" if len(missing) > 12 else ""
        question = Question(
            f"[b]{len(missing)} of {len(leaves)} leaves have no accepted samples[/b] in run "
            f"{escape(self.paths.name)}:\n{names}{more}\n\nThe model would learn nothing "
            "of them. Generate them first (F3), or mix and train without them?",
            [("without", "Mix and train without them"), ("cancel", "Cancel")],
        )

        def answered(answer: str | None) -> None:
            if answer == "without":
                self._begin(resume=False, leaves=[])

        self.app.push_screen(question, answered)

    @on(Button.Pressed, "#resume")
    def action_resume(self) -> None:
        self._begin(resume=True, leaves=None)

    def _begin(self, *, resume: bool, leaves: list[str] | None) -> None:
        if (job := self.begin_job("train")) is None:
            return
        if not resume:
            for phase in PHASES:
                self.query_one(f"#loss-{phase}", LossChart).set_losses([])
        self.query_one("#status", Static).update("resuming…" if resume else "mixing…")
        self._train(job, self.app.recipe_name, resume, leaves)

    @on(Button.Pressed, "#pause")
    def action_pause(self) -> None:
        # "Resume" is this screen's resume-from-checkpoint button: the pause button says "Go on"
        self.toggle_pause(resume_label="Go on", running="training")

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        self.stop_job("#status", "stopping after this step (checkpoint)…")

    @on(Button.Pressed, "#export")
    def action_export(self) -> None:
        if (job := self.begin_job("export")) is None:
            return
        self.query_one("#status", Static).update("exporting: merge → GGUF → quantize…")
        self._export(job, self.app.recipe_name)

    @work(thread=True, exclusive=True, group="train")
    def _export(self, job: Job, recipe_name: str) -> None:
        from labdesk.export.run_export import export_run
        from labdesk.train.phases import resolve_student

        name = None
        try:
            recipe = job.recipe(recipe_name)
            student = resolve_student(recipe.student, self.app.workspace)
            model = export_run(
                job.run,
                recipe,
                self.app.workspace,
                student_dir=student,
                reporter=job.reporter(self),
            )
            name = model.name
        except Exception as exc:
            notify_error(self.app, exc)
        self.app.call_from_thread(self._exported, name)

    def _exported(self, name: str | None) -> None:
        self.end_job()
        if name:
            self.query_one("#status", Static).update(f"chat model '{name}' is ready: F5 to talk")
            self.notify(f"chat model '{name}' is ready: press F5 to talk to it")
        else:
            self.query_one("#status", Static).update("export failed")

    @work(thread=True, exclusive=True, group="train")
    def _train(self, job: Job, recipe_name: str, resume: bool, leaves: list[str] | None) -> None:
        """`leaves`: those that must have accepted samples (mixing refuses otherwise)."""
        from labdesk.train.mix import mix_for_recipe
        from labdesk.train.phases import resolve_student, train_run

        report = job.reporter(self)
        finished = False
        try:
            recipe = job.recipe(recipe_name)
            run = job.run
            if not resume or not run.phase_data(PHASES[0]).is_file():
                ws = self.app.workspace
                mix_for_recipe(run, recipe, ws, report, leaves=leaves, cancel=job.cancel)
            student = resolve_student(recipe.student, self.app.workspace)
            train_run(run, recipe, student, report, resume=resume, stop=job.cancel.is_set)
            finished = True
        except Cancelled as exc:
            self.app.call_from_thread(
                self.log_line, f"[yellow]{escape(exc.message)}: Resume goes on[/]"
            )
        except Exception as exc:
            notify_error(self.app, exc)
        self.app.call_from_thread(self._finished, finished)

    def _finished(self, finished: bool) -> None:
        self.end_job()
        self.query_one("#status", Static).update(
            "done: the final adapter is ready (chat on F5)" if finished else "stopped"
        )

    @on(CoreEvent)
    def _progress(self, message: CoreEvent) -> None:
        event = message.event
        table = self.query_one("#phases", DataTable)
        phase = event.step if event.step in PHASES else None
        if event.stage == "train" and phase and event.kind == "progress":
            m = event.metrics
            table.update_cell(phase, "state", "training")
            table.update_cell(phase, "step", f"{event.done}/{event.total}")
            if "loss" in m:
                table.update_cell(phase, "loss", f"{m['loss']:.4f}")
                self.query_one(f"#loss-{phase}", LossChart).add(float(m["loss"]))
            if "lr" in m:
                table.update_cell(phase, "lr", f"{m['lr']:.2e}")
            if "tokens_per_s" in m:
                table.update_cell(phase, "tok/s", f"{m['tokens_per_s']:.0f}")
            if "memory_gb" in m:
                table.update_cell(phase, "memory", f"{m['memory_gb']:.2f} GB")
            if "eta_s" in m:
                table.update_cell(phase, "ETA", _duration(m["eta_s"]))
            if event.done == event.total:
                table.update_cell(phase, "state", "done")
            self.query_one("#status", Static).update(f"training {phase}")
        if event.message:
            colour = {"warning": "yellow", "done": "green"}.get(event.kind, "default")
            self.log_line(f"[dim]{event.stage}[/] [{colour}]{escape(event.message)}[/]")

    def log_line(self, text: str) -> None:
        self.query_one("#events", RichLog).write(text)
