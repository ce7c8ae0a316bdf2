"""Fit a conversation into the model's context, counting tokens, not characters.

The system prompt always stays (it is how the model was trained to behave) and so does the
newest user message; older turns go first, a user question together with its answer.
"""

from __future__ import annotations

from collections.abc import Callable

from labdesk.errors import LabdeskError

Messages = list[dict[str, str]]


def fit_history(messages: Messages, budget: int, count: Callable[[Messages], int]) -> Messages:
    """The longest suffix of the conversation (plus the system message) within `budget` tokens.

    `count(messages)` gives the tokens of the rendered prompt, template markers included.
    """
    head = messages[:1] if messages and messages[0]["role"] == "system" else []
    body = messages[len(head) :]
    # Drop whole exchanges: start the kept part at a user message.
    starts = [i for i, m in enumerate(body) if m["role"] == "user"] or [0]
    for start in starts:
        kept = head + body[start:]
        if count(kept) <= budget:
            return kept
    raise LabdeskError(
        f"the system prompt and your last message do not fit the model's context ({budget} tokens)",
        hint="shorten the message or the system prompt (/system), or use a model with a longer context",
    )
