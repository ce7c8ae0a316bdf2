"""The chat screen: stream answers from the tuned model, optionally beside the base model.

The core's `Chatter` does the talking (`labdesk.chat`); this screen only loads it in a worker,
shows the pieces as they stream, stops a reply on escape, and saves every exchange as a session
in the workspace. In compare mode the base model keeps its own conversation in the right pane.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Button,
    Checkbox,
    Footer,
    Input,
    Label,
    OptionList,
    Select,
    Static,
)
from textual.widgets.option_list import Option

from labdesk.chat.chatter import NO_ANSWER
from labdesk.errors import LabdeskError
from labdesk.tui.widgets import ModeBar
from labdesk.tui.work import notify_error

if TYPE_CHECKING:
    from labdesk.chat import ChatSession, Chatter
    from labdesk.chat.models import ChatModel
    from labdesk.tui.app import LabdeskApp

FLUSH_S = 0.05
"""Streamed pieces are shown in batches this far apart: smooth, and cheap for the UI thread."""


class Bubble(Static):
    """One turn of the conversation."""

    DEFAULT_CSS = """
    Bubble { margin: 0 0 1 0; padding: 0 1; }
    Bubble.-user { background: $primary 15%; }
    Bubble.-assistant { background: $surface; }
    """

    def __init__(self, role: str, text: str = "", who: str = "", *, ended: bool = False) -> None:
        super().__init__(classes=f"-{role}")
        self.role = role
        self.who = who or role
        self.text = text
        self.ended = ended
        self._paint()

    def _paint(self) -> None:
        shown = self.text or (NO_ANSWER if self.ended else "")
        self.update(f"[b]{escape(self.who)}[/b]\n{escape(shown)}")

    def append(self, piece: str) -> None:
        self.text += piece
        self._paint()

    def end(self) -> None:
        """The answer is complete: an empty one says so instead of staying blank."""
        self.ended = True
        self._paint()


class ChatScreen(Screen[None]):
    DEFAULT_CSS = """
    ChatScreen #side {
        width: 28%; min-width: 24; max-width: 40; border-right: vkey $panel; padding: 0 1;
    }
    ChatScreen #sessions { height: 1fr; }
    ChatScreen #panes { height: 1fr; }
    ChatScreen .pane { width: 1fr; padding: 0 1; }
    ChatScreen #base-pane { display: none; border-left: vkey $panel; }
    ChatScreen.-compare #base-pane { display: block; }
    ChatScreen #status { height: 1; padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop answer"),
        Binding("ctrl+n", "new_chat", "New chat"),
    ]
    AUTO_FOCUS = "#prompt"
    """Typing on arrival goes to the question box: the first message is never lost."""

    app: LabdeskApp

    def __init__(self) -> None:
        super().__init__()
        self.model: ChatModel | None = None
        self.chatter: Chatter | None = None
        self.base: Chatter | None = None
        self.session: ChatSession | None = None
        self.base_session: ChatSession | None = None
        self.cancel = threading.Event()
        self.busy = False

    def compose(self) -> ComposeResult:
        yield ModeBar("chat")
        with Horizontal():
            with Vertical(id="side"):
                yield Label("Model", classes="pane-title")
                yield Select[str]([], prompt="pick a model", id="model")
                yield Checkbox("Compare with the base model", id="compare")
                yield Label("Saved chats", classes="pane-title")
                yield OptionList(id="sessions")
                yield Button("New chat", id="new")
            with Vertical():
                with Horizontal(id="panes"):
                    yield VerticalScroll(id="tuned-pane", classes="pane")
                    yield VerticalScroll(id="base-pane", classes="pane")
                yield Static("", id="status")
                yield Input(placeholder="Ask something (enter sends, escape stops)", id="prompt")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.refresh_models()
        self.refresh_sessions()
        self.watch(self.app, "run_name", self._run_changed, init=False)

    def _run_changed(self, run: str) -> None:
        """The current run's tuned model, when it has one, is the one to talk to."""
        select = self.query_one("#model", Select)
        if not self.busy and run in [value for _, value in self.model_options()]:
            select.value = run

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.refresh_models()

    # models and sessions ------------------------------------------------------------------
    def model_options(self) -> list[tuple[str, str]]:
        """Tuned models first (by name), then any other GGUF in the workspace (by path)."""
        from labdesk.export.registry import list_tuned

        ws = self.app.workspace
        tuned = list_tuned(ws)
        options = [(f"tuned: {m.name}", m.name) for m in tuned]
        taken = {Path(p).resolve() for m in tuned for p in (m.gguf, m.base_gguf, m.merged_gguf)}
        for gguf in sorted(ws.models.rglob("*.gguf")):
            if gguf.resolve() not in taken and ".part" not in gguf.name:
                options.append((f"gguf: {gguf.relative_to(ws.models)}", str(gguf)))
        return options

    def refresh_models(self) -> None:
        select = self.query_one("#model", Select)
        current = select.value
        options = self.model_options()
        if not options and self.session is None:
            self.query_one("#tuned-pane").remove_children()
            self.query_one("#tuned-pane").mount(
                Static(
                    "No model to talk to yet. Generate data (F3), train and export it (F4), "
                    "and it appears here.",
                    classes="hint",
                )
            )
        select.set_options(options)
        values = [value for _, value in options]
        if current in values:
            select.value = current
        elif values and self.model is None:  # the current run's model, else the newest
            select.value = self.app.run_name if self.app.run_name in values else values[0]

    def refresh_sessions(self) -> None:
        from labdesk.chat import list_sessions

        sessions = self.query_one("#sessions", OptionList)
        sessions.clear_options()
        sessions.add_options(
            [Option(name, id=name) for name in list_sessions(self.app.workspace.chats)]
        )

    @on(Select.Changed, "#model")
    def _model_picked(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.open_model(event.value)

    def open_model(self, ref: str) -> None:
        self.chatter = self.base = None
        self._status(f"loading {ref}…")
        self._load(ref)

    @work(thread=True, exclusive=True, group="chat-load")
    def _load(self, ref: str) -> None:
        from labdesk.chat.models import open_chatter, resolve_chat_model

        try:
            model = resolve_chat_model(self.app.workspace, ref)
            chatter = open_chatter(model, seed=self.app.chat_seed)
        except Exception as exc:
            notify_error(self.app, exc)
            self.app.call_from_thread(self._status, "no model loaded")
            return
        self.app.call_from_thread(self._loaded, model, chatter)

    def _loaded(self, model: ChatModel, chatter: Chatter) -> None:
        self.model, self.chatter = model, chatter
        base = "" if model.base_gguf else " · no base model recorded to compare with"
        self._status(f"{model.name} ready{base}")
        if self.session is None or self.session.model != model.ref:
            self.action_new_chat()

    @on(Button.Pressed, "#new")
    def action_new_chat(self) -> None:
        from labdesk.chat import ChatSession

        if self.model is None:
            return
        self.session = ChatSession(model=self.model.ref, system_prompt=self.model.system_prompt)
        self.base_session = None
        self.query_one("#tuned-pane").remove_children()
        self.query_one("#base-pane").remove_children()

    @on(OptionList.OptionSelected, "#sessions")
    def _session_picked(self, event: OptionList.OptionSelected) -> None:
        from labdesk.chat import load_session

        try:
            session = load_session(self.app.workspace.chats, str(event.option.id))
        except LabdeskError as exc:
            notify_error(self.app, exc)
            return
        self.session = session
        self.base_session = None
        pane = self.query_one("#tuned-pane")
        pane.remove_children()
        pane.mount_all(
            Bubble(
                t.role,
                t.content + (" [stopped]" if t.interrupted else ""),
                t.model or "",
                ended=t.role == "assistant",
            )
            for t in session.turns
        )
        if self.model is None or session.model != self.model.ref:
            self.open_model(session.model)

    @on(Checkbox.Changed, "#compare")
    def _compare(self, event: Checkbox.Changed) -> None:
        self.set_class(event.value, "-compare")

    # asking --------------------------------------------------------------------------------
    @on(Input.Submitted, "#prompt")
    def _ask(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text or self.busy:
            return
        if self.chatter is None or self.session is None:
            self.notify("pick a model first (train and export one on F4)", severity="warning")
            return
        event.input.value = ""
        compare = self.query_one("#compare", Checkbox).value
        if compare and (self.model is None or self.model.base_gguf is None):
            self.notify("this model has no base model recorded to compare with", severity="warning")
            compare = False
        self.cancel = threading.Event()
        self.busy = True
        tuned_pane = self.query_one("#tuned-pane", VerticalScroll)
        tuned_pane.mount(Bubble("user", text, "you"))
        answer = Bubble("assistant", "", self.chatter.model)
        tuned_pane.mount(answer)
        base_answer = None
        if compare:
            base_pane = self.query_one("#base-pane", VerticalScroll)
            base_pane.mount(Bubble("user", text, "you"))
            base_answer = Bubble("assistant", "", "base model")
            base_pane.mount(base_answer)
        self._status("answering… (escape stops)")
        self._stream(text, answer, base_answer, self.cancel)

    @work(thread=True, exclusive=True, group="chat")
    def _stream(
        self, text: str, answer: Bubble, base_answer: Bubble | None, cancel: threading.Event
    ) -> None:
        from labdesk.chat import ChatSession, save_session
        from labdesk.chat.models import open_chatter

        assert self.chatter is not None and self.session is not None and self.model is not None
        try:
            self._pump(self.chatter, self.session, text, answer, cancel)
            save_session(self.app.workspace.chats, self.session)
            if base_answer is not None and self.model.base_gguf is not None and not cancel.is_set():
                if self.base is None:
                    self.base = open_chatter(
                        self.model, gguf=self.model.base_gguf, seed=self.app.chat_seed
                    )
                if self.base_session is None:
                    self.base_session = ChatSession(
                        model=str(self.model.base_gguf), system_prompt=self.model.system_prompt
                    )
                self._pump(self.base, self.base_session, text, base_answer, cancel)
        except Exception as exc:
            notify_error(self.app, exc)
        self.app.call_from_thread(self._answered, cancel.is_set())

    def _pump(
        self,
        chatter: Chatter,
        session: ChatSession,
        text: str,
        bubble: Bubble,
        cancel: threading.Event,
    ) -> None:
        """Stream one reply into `bubble`, flushing pieces to the UI in small batches."""
        pending: list[str] = []
        last = time.monotonic()
        stream = chatter.reply(session, text, cancel)
        with closing(stream):
            for piece in stream:
                pending.append(piece)
                if time.monotonic() - last >= FLUSH_S:
                    self.app.call_from_thread(self._show, bubble, "".join(pending))
                    pending.clear()
                    last = time.monotonic()
        if pending:
            self.app.call_from_thread(self._show, bubble, "".join(pending))
        if not session.turns[-1].interrupted:
            self.app.call_from_thread(bubble.end)

    def _show(self, bubble: Bubble, text: str) -> None:
        bubble.append(text)
        if isinstance(bubble.parent, VerticalScroll):
            bubble.parent.scroll_end(animate=False)

    def _answered(self, stopped: bool) -> None:
        self.busy = False
        self._status("stopped: the partial answer is kept" if stopped else "")
        self.refresh_sessions()

    def action_stop(self) -> None:
        self.cancel.set()

    def on_unmount(self) -> None:
        self.cancel.set()  # quitting mid-answer keeps what arrived (the session is saved)

    def _status(self, text: str) -> None:
        self.query_one("#status", Static).update(escape(text))
