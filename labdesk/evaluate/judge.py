"""Judging open answers locally, with the recipe's judge model and schema-constrained verdicts.

Two rubrics, both 1–10 so results read alike: a skill answer is graded against the seed's
reference answer (the MT-Bench-branch idea), a general answer on its own merits (the forgetting
check compares the tuned model's grades with the base model's).
"""

from __future__ import annotations

from typing import Any

from labdesk.evaluate.items import EvalItem
from labdesk.models.types import GenRequest

REASON_CHARS = 240
VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "maxLength": REASON_CHARS},
        "score": {"enum": list(range(1, 11))},
    },
    "required": ["reason", "score"],
}
# Room for the longest reason plus the JSON around it, even at one character per token.
VERDICT_TOKENS = REASON_CHARS + 48

_JUDGE_SYSTEM = (
    "You grade answers written by an AI assistant. You are strict, fair and brief. "
    "Reply with JSON only: a one-sentence reason, then a score from 1 (useless or wrong) "
    "to 10 (complete, correct and well written)."
)

_WITH_REFERENCE = """Grade the assistant's answer to the question below. A reference answer written by a person is given: an answer that states the same facts or does the same task as well deserves a high score, one that contradicts it or misses its point a low score. Wording may differ.
{context}
[Question]
{question}

[Reference answer]
{reference}

[Assistant's answer]
{answer}"""

_ON_ITS_OWN = """Grade the assistant's answer to the question below for correctness, helpfulness and clarity.

[Question]
{question}

[Assistant's answer]
{answer}"""


def judge_messages(item: EvalItem, answer: str) -> list[dict[str, str]]:
    if item.reference:
        context = f"\n[Context given with the question]\n{item.context}\n" if item.context else ""
        text = _WITH_REFERENCE.format(
            context=context, question=item.question, reference=item.reference, answer=answer
        )
    else:
        text = _ON_ITS_OWN.format(question=item.question, answer=answer)
    return [{"role": "system", "content": _JUDGE_SYSTEM}, {"role": "user", "content": text}]


def verdict_request(prompt: str) -> GenRequest:
    return GenRequest(prompt, VERDICT_TOKENS, temperature=0.0, schema=VERDICT_SCHEMA)
