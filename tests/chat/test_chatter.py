from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from labdesk.chat import (
    ChatSession,
    Chatter,
    Turn,
    derive_chat_format,
    fit_history,
    list_sessions,
    load_session,
    save_session,
)
from labdesk.errors import LabdeskError
from labdesk.models.chat_template import LAB_CHAT_TEMPLATE

if TYPE_CHECKING:
    from labdesk.models.engine import Engine

STOP = derive_chat_format(LAB_CHAT_TEMPLATE).stop


def _chatter(engine: Engine, **kw: object) -> Chatter:
    options: dict[str, object] = {"max_tokens": 24, "temperature": 0.0, **kw}
    return Chatter(engine, model="stories", n_ctx=engine.n_ctx, stop=STOP, **options)  # type: ignore[arg-type]


def _session(turns: int) -> ChatSession:
    session = ChatSession(model="stories", system_prompt="You tell short stories.", name="t")
    for i in range(turns):
        session.turns.append(Turn("user", f"Question number {i}: who was Lily's friend?"))
        session.turns.append(Turn("assistant", f"Answer {i}: Lily had a friend named Tom."))
    return session


def test_reply_streams_in_the_lab_template_and_records_the_answer(stories_engine: Engine) -> None:
    chatter = _chatter(stories_engine)
    session = _session(1)
    pieces = list(chatter.reply(session, "Once upon a time"))

    assert len(pieces) > 1  # streamed, not delivered in one block
    answer = session.turns[-1]
    assert answer.role == "assistant" and answer.content == "".join(pieces)
    assert not answer.interrupted and answer.model == "stories"
    prompt = stories_engine.chat_prompt(session.messages()[:-1])
    assert prompt.startswith("<|system|>\nYou tell short stories.\n<|user|>\n")
    assert prompt.endswith("<|user|>\nOnce upon a time\n<|assistant|>\n")
    # Same text as asking the engine directly with that prompt.
    direct = "".join(stories_engine.stream(prompt, max_tokens=24, temperature=0.0, stop=STOP))
    assert answer.content == direct


def test_a_seed_makes_sampled_answers_reproducible(stories_engine: Engine) -> None:
    def answer(seed: int) -> str:
        chatter = _chatter(stories_engine, temperature=0.9, seed=seed)
        return "".join(chatter.reply(_session(1), "Once upon a time"))

    first = answer(seed=3)
    assert first and answer(seed=3) == first
    assert answer(seed=4) != first


def test_history_is_trimmed_by_tokens_keeping_system_prompt_and_newest_turns(
    stories_engine: Engine,
) -> None:
    chatter = _chatter(stories_engine, max_tokens=64)
    session = _session(12)  # far more than 256 - 64 tokens
    messages = [*session.messages(), {"role": "user", "content": "And then?"}]
    full = stories_engine.count_tokens(stories_engine.chat_prompt(messages))
    assert full > 192

    prompt = chatter.prompt_for(messages)
    assert stories_engine.count_tokens(prompt) <= 256 - 64
    assert prompt.startswith("<|system|>\nYou tell short stories.\n")
    assert prompt.endswith("<|user|>\nAnd then?\n<|assistant|>\n")
    assert "Question number 11" in prompt and "Answer 11" in prompt
    assert "Question number 0:" not in prompt
    # As many turns as fit: adding back the next older exchange would overflow.
    kept = fit_history(
        messages, 192, lambda m: stories_engine.count_tokens(stories_engine.chat_prompt(m))
    )
    first_kept = messages.index(kept[1])
    wider = [messages[0], *messages[first_kept - 2 :]]
    assert stories_engine.count_tokens(stories_engine.chat_prompt(wider)) > 192


def test_a_message_that_cannot_fit_is_a_clear_error(stories_engine: Engine) -> None:
    chatter = _chatter(stories_engine, max_tokens=64)
    session = _session(0)
    with pytest.raises(LabdeskError, match="do not fit"):
        list(chatter.reply(session, "word " * 400))


def test_cancel_keeps_the_partial_answer_marked_and_the_conversation(
    stories_engine: Engine,
) -> None:
    chatter = _chatter(stories_engine, max_tokens=48)
    session = _session(2)
    before = [Turn(t.role, t.content) for t in session.turns]
    cancel = threading.Event()
    received = []
    for piece in chatter.reply(session, "Tell me a story", cancel):
        received.append(piece)
        cancel.set()

    assert session.turns[:4] == before
    assert session.turns[4] == Turn("user", "Tell me a story")
    answer = session.turns[5]
    assert answer.interrupted and answer.content == "".join(received)
    # The conversation goes on after a cancelled answer.
    list(chatter.reply(session, "Go on"))
    assert len(session.turns) == 8 and not session.turns[-1].interrupted


def test_closing_the_stream_like_ctrl_c_marks_the_answer(stories_engine: Engine) -> None:
    chatter = _chatter(stories_engine, max_tokens=48)
    session = _session(0)
    stream = chatter.reply(session, "Once upon a time")
    first = next(stream)
    stream.close()  # what the REPL does when Ctrl-C arrives mid-answer
    assert session.turns[-1].content == first and session.turns[-1].interrupted


def test_saved_session_reloads_identically(stories_engine: Engine, tmp_path: Path) -> None:
    session = _session(2)
    session.name = "lily-chat"
    cancel = threading.Event()
    for _ in _chatter(stories_engine).reply(session, 'Ünïcode ✓ and "quotes"', cancel):
        cancel.set()
    path = save_session(tmp_path, session)

    assert path == tmp_path / "lily-chat.json"
    assert load_session(tmp_path, "lily-chat") == session
    assert list_sessions(tmp_path) == ["lily-chat"]


def test_bad_names_and_missing_or_damaged_sessions_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(LabdeskError, match="not a usable chat name"):
        save_session(tmp_path, ChatSession(model="m", system_prompt="", name="../escape"))
    with pytest.raises(LabdeskError, match="no saved chat named 'nope'"):
        load_session(tmp_path, "nope")
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(LabdeskError, match="cannot be read"):
        load_session(tmp_path, "broken")
