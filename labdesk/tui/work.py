"""Running core calls from the UI: progress events in, cancel and pause out.

Core calls run in `@work(thread=True)` workers. Their `Reporter` posts each `Event` to a widget as
a `CoreEvent` message (`post_message` is thread-safe), and it is also where a pause takes hold:
while paused, the reporter blocks the worker at its next event, so every core step can be paused
without the core knowing about it. Cancel sets the `threading.Event` passed as ``cancel=``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, ClassVar

from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Static

from labdesk.errors import LabdeskError, disk_full
from labdesk.runs import RunPaths

if TYPE_CHECKING:
    from textual.app import App
    from textual.message_pump import MessagePump

    from labdesk.events import Event, Reporter
    from labdesk.recipes import Recipe
    from labdesk.tui.app import LabdeskApp


class CoreEvent(Message):
    """A progress event from a core call, delivered on the UI thread."""

    def __init__(self, event: Event, job: str) -> None:
        super().__init__()
        self.event = event
        self.job = job


class Job:
    """The controls of one long core call: cancel, pause and resume; and the run it works on
    (workers read it from here: the app's current run may change once the job ends)."""

    def __init__(self, name: str, run: RunPaths, *, writes_run: bool = True) -> None:
        self.name = name
        self.run = run
        self.writes_run = writes_run
        self.finished = False
        """Set by the screen when the worker ended (kept jobs are only stopped on quit)."""
        self.cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def recipe(self, name: str) -> Recipe:
        """Load the recipe `name` and, when the job writes into its run, record it there as
        the CLI does (so `labdesk evaluate RUN` later needs no --recipe)."""
        from labdesk.fileio import write_json
        from labdesk.recipes import load_recipe

        recipe = load_recipe(name)
        if self.writes_run:
            write_json(self.run.recipe, recipe.model_dump(mode="json"))
        return recipe

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self.cancel.set()
        self._running.set()  # a paused worker must wake up to see the cancel

    def reporter(self, target: MessagePump) -> Reporter:
        def report(event: Event) -> None:
            target.post_message(CoreEvent(event, self.name))
            while not self._running.wait(0.1):
                if self.cancel.is_set():
                    break

        return report


class JobScreen(Screen[None]):
    """A screen that runs one long core call at a time and owns the buttons that steer it.

    Subclasses name their buttons: `IDLE_BUTTONS` are disabled while a job runs (Start…),
    `JOB_BUTTONS` enabled only then (Pause, Stop…). A `#pause` button and a `#status` line are
    what `toggle_pause` updates. A job that writes into the run holds the run's lock while it
    runs, so a `labdesk` command on the same run (or another screen's job) is refused.
    """

    IDLE_BUTTONS: ClassVar[tuple[str, ...]] = ("#start",)
    JOB_BUTTONS: ClassVar[tuple[str, ...]] = ()

    app: LabdeskApp

    def __init__(self) -> None:
        super().__init__()
        self.job: Job | None = None
        self._lock = contextlib.ExitStack()

    def on_mount(self) -> None:
        self.watch(self.app, "run_name", self._run_changed, init=False)
        self.watch(self.app, "recipe_name", self._recipe_changed, init=False)

    def show_run(self) -> None:
        """Show the app's current run (subclasses override)."""

    def on_screen_resume(self) -> None:
        if self.is_mounted and self.job is None:
            self.show_run()

    def _run_changed(self) -> None:
        """The app's current run changed: show it, unless a job here is busy with its own."""
        if self.job is None:
            self.show_run()

    def _recipe_changed(self) -> None:
        """Show what the app's new recipe means here (subclasses override)."""

    @property
    def paths(self) -> RunPaths:
        """The app's current run (a running job keeps its own: `Job.run`)."""
        return RunPaths(self.app.run_dir)

    def begin_job(self, name: str, *, writes_run: bool = True) -> Job | None:
        """A new job, or None when one is already running here or the run is in use."""
        from labdesk.runlock import RunBusy, hold_run

        if self.job is not None:
            return None
        run = self.paths
        if writes_run:
            try:
                self._lock.enter_context(hold_run(run, f"the labdesk app: {name}"))
            except RunBusy as exc:
                notify_error(self.app, exc)
                return None
        self.job = self.app.start_job(name, run, writes_run=writes_run)
        self.set_running(True)
        return self.job

    def end_job(self) -> None:
        """The worker ended: the app stops tracking the job, its lock goes, buttons go back."""
        if self.job is not None:
            self.job.finished = True
        self.job = None
        self._lock.close()
        self.set_running(False)

    def set_running(self, running: bool) -> None:
        for button in self.IDLE_BUTTONS:
            self.query_one(button, Button).disabled = running
        for button in self.JOB_BUTTONS:
            self.query_one(button, Button).disabled = not running
        if "#pause" in self.JOB_BUTTONS:
            self.query_one("#pause", Button).label = "Pause"

    def toggle_pause(self, *, resume_label: str = "Resume", running: str = "running") -> None:
        if self.job is None:
            return
        if self.job.paused:
            self.job.resume()
        else:
            self.job.pause()
        paused = self.job.paused
        self.query_one("#pause", Button).label = resume_label if paused else "Pause"
        self.query_one("#status", Static).update("paused" if paused else running)

    def stop_job(self, status: str, text: str) -> None:
        """Ask the running job to stop; `text` (in the `status` Static) says what happens."""
        if self.job is not None:
            self.job.stop()
            self.query_one(status, Static).update(text)


def error_text(exc: LabdeskError) -> str:
    """A notification body: what went wrong, where, and the fix."""
    text = exc.message
    if exc.where:
        text += f"\n{exc.where}"
    if exc.hint:
        text += f"\nfix: {exc.hint}"
    return text


def notify_error(app: App[Any], exc: BaseException) -> None:
    """Show a failure as a notification (called from any thread); the app never crashes on it."""
    exc = disk_full(exc) or exc
    if isinstance(exc, LabdeskError):
        title, text = type(exc).__name__, error_text(exc)
    else:
        title, text = "Unexpected error", f"{type(exc).__name__}: {exc}"

    def show() -> None:
        app.notify(text, title=title, severity="error", timeout=12)

    try:
        app.call_from_thread(show)
    except RuntimeError:  # already on the UI thread
        show()
