"""Answer in a chat session, streaming: the one code path the CLI REPL and the TUI both drive."""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Protocol

from labdesk.chat.history import Messages, fit_history
from labdesk.chat.session import ChatSession, Turn

NO_ANSWER = "(no answer: the model ended its turn at once)"
"""What a chat shows for an empty finished answer; the session keeps the empty text as it was."""


class StreamingEngine(Protocol):
    """What chatting needs from a loaded model (`labdesk.models.Engine` provides it)."""

    def chat_prompt(self, messages: Messages) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def stream(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float,
        seed: int | None,
        stop: tuple[str, ...],
        cancel: threading.Event | None,
    ) -> Iterator[str]: ...


class Chatter:
    """One model answering: renders the session in the model's template and streams a reply.

    `n_ctx` is the context the engine was loaded with; `max_tokens` of it are reserved for the
    answer and the rest holds as much of the conversation as fits. With a `seed`, sampling is
    reproducible: the same conversation and question get the same answer; without one, every
    answer is a fresh draw.
    """

    def __init__(
        self,
        engine: StreamingEngine,
        *,
        model: str,
        n_ctx: int,
        stop: Sequence[str] = (),
        max_tokens: int = 512,
        temperature: float = 0.7,
        seed: int | None = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.n_ctx = n_ctx
        self.stop = tuple(stop)
        self.max_tokens = min(max_tokens, max(n_ctx // 2, 1))
        self.temperature = temperature
        self.seed = seed

    def prompt_for(self, messages: Messages) -> str:
        """The prompt text for `messages` (trimmed to fit) ending with the assistant header."""
        rendered: dict[int, str] = {}  # kept length -> prompt text: render each candidate once

        def count(candidate: Messages) -> int:
            rendered[len(candidate)] = text = self.engine.chat_prompt(candidate)
            return self.engine.count_tokens(text)

        kept = fit_history(messages, self.n_ctx - self.max_tokens, count)
        return rendered[len(kept)]

    def reply(
        self, session: ChatSession, text: str, cancel: threading.Event | None = None
    ) -> Generator[str, None, None]:
        """Add `text` as the user's turn and stream the answer, recording it as it comes.

        The answer turn is in the session from the first piece on; if the stream stops early
        (`cancel` set, the consumer closes the iterator, Ctrl-C, an error) what arrived is kept and
        the turn is marked `interrupted`.
        """
        session.turns.append(Turn("user", text))
        prompt = self.prompt_for(session.messages())
        answer = Turn("assistant", "", model=self.model)
        session.turns.append(answer)
        finished = False
        try:
            for piece in self.engine.stream(
                prompt,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                seed=self.seed,
                stop=self.stop,
                cancel=cancel,
            ):
                answer.content += piece
                yield piece
            finished = not (cancel is not None and cancel.is_set())
        finally:
            answer.interrupted = not finished

    def answer_once(self, session: ChatSession, text: str) -> str:
        """The whole reply to `text` in a copy of `session` (for /compare): `session` is untouched."""
        probe = ChatSession(
            model=self.model,
            system_prompt=session.system_prompt,
            turns=[Turn(t.role, t.content) for t in session.turns],
            name=session.name,
        )
        return "".join(self.reply(probe, text))
