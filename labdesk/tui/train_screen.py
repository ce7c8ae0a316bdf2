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
from textual.widgets import Button, DataTable, Footer, Header, Label, RichLog, Static

from labdesk.errors import Cancelled
from labdesk.runs import PHASES, RunPaths
from labdesk.tui.widgets import LossChart, RecipeSelect, read_losses
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
    recipe: Recipe, model_dir_config: dict[str, object], device: str, free: float | None
) -> str:
    """What each phase needs at peak against what is free (the core's estimate)."""
    from labdesk.memory import plan_training

    lines = [f"device {device}" + (f" · free {free / GIB:.1f} GiB" if free is not None else "")]
    for phase in recipe.train.phases:
        plan = plan_training(model_dir_config, recipe.train, phase, device)
        fits = ""
        if free is not None:
            fits = "[green]fits[/]" if plan.total <= free else "[red]does not fit[/]"
        lines.append(
            f"{phase.name}: {plan.total / GIB:.2f} GiB (weights {plan.weights / GIB:.2f}, "
            f"activations {plan.activations / GIB:.2f}, logits {plan.logits / GIB:.2f}) {fits}"
        )
    return "\n".join(lines)


class TrainScreen(JobScreen):
    DEFAULT_CSS = """
    TrainScreen #setup { width: 46; border-right: vkey $panel; padding: 0 1; }
    TrainScreen #plan { height: auto; padding: 0 1; border: round $panel; }
    TrainScreen #main { width: 1fr; }
    TrainScreen #phases { height: auto; }
    TrainScreen #status { height: 1; padding: 0 1; }
    TrainScreen #charts { height: 1fr; }
    TrainScreen #events { height: 6; border-top: hkey $panel; }
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

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.app.run_dir)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="setup"):
                yield Label("Recipe", classes="pane-title")
                yield RecipeSelect()
                yield Label("Memory plan", classes="pane-title")
                yield Static("working it out…", id="plan")
                with Horizontal(classes="toolbar"):
                    yield Button("Mix + train", id="start", variant="primary")
                    yield Button("Resume", id="resume")
                with Horizontal(classes="toolbar"):
                    yield Button("Pause", id="pause", disabled=True)
                    yield Button("Stop", id="stop", variant="error", disabled=True)
                yield Button("Export for chat", id="export")
            with Vertical(id="main"):
                yield Static("idle", id="status")
                yield DataTable(id="phases", cursor_type="row")
                with VerticalScroll(id="charts"):
                    for phase in PHASES:
                        yield LossChart(phase)
                yield RichLog(id="events", markup=True, wrap=True, max_lines=300)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#phases", DataTable)
        for key in ("phase", "state", "step", "loss", "lr", "tok/s", "memory", "ETA"):
            table.add_column(key, key=key)
        for phase in PHASES:
            done = (self.paths.phase_dir(phase) / "done.json").is_file()
            table.add_row(phase, "done" if done else "—", "", "", "", "", "", "", key=phase)
            self.query_one(f"#loss-{phase}", LossChart).set_losses(
                read_losses(self.paths.phase_dir(phase) / "loss.jsonl")
            )
        self._plan(self.app.recipe_name)

    @on(RecipeSelect.Changed)
    def _recipe_changed(self) -> None:
        if self.is_mounted:
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
            text = memory_plan_text(recipe, config.get("text_config", config), device, free)
        except Exception as exc:
            notify_error(self.app, exc)
            text = "[red]no plan: see the notification[/]"
        self.app.call_from_thread(self.query_one("#plan", Static).update, text)

    # running -------------------------------------------------------------------------------
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        self._begin(resume=False)

    @on(Button.Pressed, "#resume")
    def action_resume(self) -> None:
        self._begin(resume=True)

    def _begin(self, *, resume: bool) -> None:
        if (job := self.begin_job("train")) is None:
            return
        if not resume:
            for phase in PHASES:
                self.query_one(f"#loss-{phase}", LossChart).set_losses([])
        self.query_one("#status", Static).update("resuming…" if resume else "mixing…")
        self._train(job, self.app.recipe_name, resume)

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
        from labdesk.recipes import load_recipe
        from labdesk.train.phases import resolve_student

        name = None
        try:
            recipe = load_recipe(recipe_name)
            student = resolve_student(recipe.student, self.app.workspace)
            model = export_run(
                self.paths,
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
    def _train(self, job: Job, recipe_name: str, resume: bool) -> None:
        from labdesk.recipes import load_recipe
        from labdesk.train.mix import mix_run
        from labdesk.train.phases import resolve_student, train_run
        from labdesk.train.replay import student_replay

        report = job.reporter(self)
        finished = False
        try:
            recipe = load_recipe(recipe_name)
            if not resume or not self.paths.phase_data(PHASES[0]).is_file():
                own = student_replay(recipe, self.app.workspace, report, job.cancel)
                mix_run(self.paths, recipe.mix, recipe.system_prompt, report, self_replay=own)
            student = resolve_student(recipe.student, self.app.workspace)
            train_run(self.paths, recipe, student, report, resume=resume, stop=job.cancel.is_set)
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
