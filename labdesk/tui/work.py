"""Running core calls from the UI: progress events in, cancel and pause out.

Core calls run in `@work(thread=True)` workers. Their `Reporter` posts each `Event` to a widget as
a `CoreEvent` message (`post_message` is thread-safe), and it is also where a pause takes hold:
while paused, the reporter blocks the worker at its next event, so every core step can be paused
without the core knowing about it. Cancel sets the `threading.Event` passed as ``cancel=``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from textual.message import Message

from labdesk.errors import LabdeskError

if TYPE_CHECKING:
    from textual.app import App
    from textual.message_pump import MessagePump

    from labdesk.events import Event, Reporter


class CoreEvent(Message):
    """A progress event from a core call, delivered on the UI thread."""

    def __init__(self, event: Event, job: str) -> None:
        super().__init__()
        self.event = event
        self.job = job


class Job:
    """The controls of one long core call: cancel, pause and resume."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.finished = False
        """Set by the screen when the worker ended (kept jobs are only stopped on quit)."""
        self.cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()

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
