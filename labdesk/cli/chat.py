"""`labdesk chat [MODEL]`: talk to a tuned model in the terminal, answers streamed as they come."""

from __future__ import annotations

import argparse
import contextlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from labdesk.chat import ChatSession, Chatter
    from labdesk.chat.models import ChatModel
    from labdesk.workspace import Workspace

HELP = """commands:
  /new             start a new conversation (the current one stays saved)
  /save [NAME]     save the conversation (it is also saved after every answer)
  /load NAME       continue a saved conversation
  /chats           list saved conversations
  /model NAME      switch to another tuned model or .gguf file
  /system TEXT     replace the system prompt (empty: none)
  /compare [TEXT]  ask the base model and the tuned model the same thing, side by side
  /help            this list
  /quit            leave (Ctrl-D works too); Ctrl-C stops an answer"""


def register(sub: Any) -> None:
    parser = sub.add_parser("chat", help="chat with a tuned model (or any GGUF)")
    parser.add_argument(
        "model",
        nargs="?",
        help="a run's tuned model (by the run's name) or a .gguf file; default: the newest",
    )
    parser.add_argument("--load", metavar="NAME", help="continue a saved conversation")
    parser.add_argument(
        "--system",
        metavar="TEXT",
        help="system prompt (default: the one the model was trained with)",
    )
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="sample from this seed: the same conversation and question get the same answer",
    )
    parser.add_argument("--max-tokens", type=int, default=512, help="longest answer, in tokens")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.set_defaults(handler=_chat)


class _Repl:
    def __init__(self, args: argparse.Namespace, ws: Workspace, console: Console) -> None:
        self.args, self.ws, self.console = args, ws, console
        self.model: ChatModel
        self.chatter: Chatter
        self.base: Chatter | None = None
        self.session: ChatSession

    def open(self, ref: str | None) -> None:
        from labdesk.chat.models import open_chatter, resolve_chat_model

        self.model = resolve_chat_model(self.ws, ref)
        self.chatter = open_chatter(self.model, **self._options())
        self.base = None
        self.console.print(f"[dim]model: {self.model.name} ({self.model.gguf})[/]")

    def _options(self) -> dict[str, Any]:
        return {
            "temperature": self.args.temperature,
            "seed": self.args.seed,
            "max_tokens": self.args.max_tokens,
            "n_threads": self.args.threads,
        }

    def new_session(self) -> None:
        from labdesk.chat import ChatSession

        system = self.args.system if self.args.system is not None else self.model.system_prompt
        self.session = ChatSession(model=self.model.ref, system_prompt=system)

    def save(self) -> None:
        from labdesk.chat import save_session

        if self.session.turns:
            save_session(self.ws.chats, self.session)

    def ask(self, text: str) -> None:
        import threading

        from labdesk.chat.chatter import NO_ANSWER

        stream = self.chatter.reply(self.session, text, threading.Event())
        try:
            with contextlib.closing(stream):
                for piece in stream:
                    self.console.print(piece, end="", markup=False, highlight=False)
        except KeyboardInterrupt:
            self.console.print("\n[yellow][answer stopped; the partial answer is kept][/]", end="")
        else:
            if not self.session.turns[-1].content:
                self.console.print(NO_ANSWER, style="dim", end="", markup=False, highlight=False)
        self.console.print()
        self.save()

    def compare(self, text: str) -> None:
        from dataclasses import replace

        from rich.columns import Columns
        from rich.panel import Panel

        from labdesk.chat.chatter import NO_ANSWER
        from labdesk.chat.models import open_chatter

        context = self.session
        if not text:
            asked = [t.content for t in self.session.turns if t.role == "user"]
            if not asked:
                self.console.print(
                    "[yellow]/compare needs a question (or a conversation to repeat)[/]"
                )
                return
            text = asked[-1]
            context = replace(
                self.session, turns=self.session.turns[: _last_user_index(self.session)]
            )
        if self.model.base_gguf is None:
            self.console.print("[yellow]this model has no base model recorded to compare with[/]")
            return
        if self.base is None:
            self.base = open_chatter(self.model, gguf=self.model.base_gguf, **self._options())
        with self.console.status("asking both models…"):
            base = self.base.answer_once(context, text)
            tuned = self.chatter.answer_once(context, text)
        self.console.print(
            Columns(
                [
                    Panel(
                        base or NO_ANSWER, title=f"base: {self.model.base_gguf.name}", expand=True
                    ),
                    Panel(tuned or NO_ANSWER, title=f"tuned: {self.model.name}", expand=True),
                ],
                equal=True,
                expand=True,
            )
        )

    def command(self, line: str) -> bool:
        """Run a /command; False means quit."""
        from labdesk.chat import list_sessions, load_session
        from labdesk.errors import LabdeskError

        name, _, rest = line[1:].partition(" ")
        rest = rest.strip()
        try:
            if name in ("quit", "exit", "q"):
                return False
            if name == "help":
                self.console.print(HELP, markup=False, highlight=False)
            elif name == "new":
                self.save()
                self.new_session()
                self.console.print("[dim]new conversation[/]")
            elif name == "save":
                if rest:
                    from labdesk.chat.session import check_session_name

                    self.session.name = check_session_name(rest)
                from labdesk.chat import save_session

                path = save_session(self.ws.chats, self.session)
                self.console.print(f"[dim]saved: {path}[/]")
            elif name == "load":
                self.save()
                self.session = load_session(self.ws.chats, rest)
                if self.session.model != self.model.ref:
                    self.console.print(f"[dim](it was held with {self.session.model})[/]")
                self._replay()
            elif name == "chats":
                self.console.print(
                    "\n".join(list_sessions(self.ws.chats)) or "no saved conversations"
                )
            elif name == "model":
                self.open(rest or None)
                self.session.model = self.model.ref
            elif name == "system":
                self.session.system_prompt = rest
                self.console.print(f"[dim]system prompt: {rest or '(none)'}[/]")
            elif name == "compare":
                self.compare(rest)
            else:
                self.console.print(f"[yellow]unknown command /{name}[/] (try /help)")
        except LabdeskError as exc:
            self.console.print(f"[bold red]error[/]: {exc}", highlight=False)
        return True

    def _replay(self) -> None:
        for turn in self.session.turns:
            who = (
                "[bold cyan]you[/]"
                if turn.role == "user"
                else f"[bold green]{turn.model or 'model'}[/]"
            )
            mark = " [yellow][stopped][/]" if turn.interrupted else ""
            self.console.print(f"{who}: ", end="")
            self.console.print(turn.content, markup=False, highlight=False, end="")
            self.console.print(mark)

    def loop(self) -> None:
        self.console.print(
            f"[dim]system prompt: {self.session.system_prompt or '(none)'} — /help for commands[/]"
        )
        while True:
            try:
                line = self.console.input("[bold cyan]you>[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                break
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    break
                continue
            self.console.print(f"[bold green]{self.model.name}>[/] ", end="")
            self.ask(line)
        self.save()


def _last_user_index(session: ChatSession) -> int:
    return max(i for i, t in enumerate(session.turns) if t.role == "user")


def _chat(args: argparse.Namespace) -> int:
    from labdesk.chat import load_session
    from labdesk.cli.render import console
    from labdesk.workspace import Workspace

    ws = Workspace.open()
    repl = _Repl(args, ws, console)
    if args.load:
        session = load_session(ws.chats, args.load)
        repl.open(args.model or session.model)
        repl.session = session
        repl._replay()
    else:
        repl.open(args.model)
        repl.new_session()
    repl.loop()
    return 0
