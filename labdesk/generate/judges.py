"""Judges a small model gives reliably: likelihoods it assigns, not verdicts it writes.

A 135M judge asked to explain and then say "yes" or "no" says "yes" to fragments. What even a
small model does reliably is assign probabilities to text. So each model judge compares the
log-likelihood the judge model gives a candidate under two conditions, or reads one probability
it assigns, and turns the number into a verdict with a reason a person can check:

- `grounded`: does the passage make the answer more likely? Mean log-probability per answer
  token with the passage and the question, minus with the question alone (a pointwise mutual
  information). An answer the passage supports gains; an invented one does not. Numbers and
  names in the answer that the passage lacks are named in the reason.
- `answers_question`: does the question make the answer more likely, given the passage? The
  same difference with the real question against a question that asks for nothing in
  particular; an answer that ignores its question gains nothing from it.
- `asks_its_fact` (knowledge): does the question raise its own fact's likelihood more than the
  likelihood of the other facts its words point at?
- `finished`: the probability the judge gives the end-of-turn marker right after the answer. A
  reply cut mid-sentence almost never ends there.
- `on_task` (skills): the response's likelihood after the leaf's task description and the
  request, minus after the request alone: does knowing what the skill is make this response
  more likely?

Two rule judges need no model: `standalone` (a question that points at a passage it does not
show, or names nothing, cannot be asked closed-book) and `not_copied` (an answer that repeats
the question, a seed example's answer, or pastes the whole passage).

A judge model behind a server that returns no log-probabilities of a prompt (llama.cpp's
`llama-server`, a misaligned echo) cannot be scored; each model judge then asks it its question
instead, constrained to a single "yes" or "no" (`ask`). That suits a large served judge; a small
one says "yes" too easily.

`bench/judges.py` measures each judge's precision and recall on a labelled set.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from labdesk.errors import Cancelled
from labdesk.generate.filters import normalize
from labdesk.models.chat_template import reply_request
from labdesk.models.types import GenRequest, GenResult, ScoreRequest, ScoreResult
from labdesk.names import names_and_numbers


@dataclass(frozen=True)
class Pair:
    """What a judge looks at: one question and its answer, with what they were written from."""

    kind: str
    """knowledge, freeform_skill or grounded_skill"""
    question: str
    answer: str
    passage: str = ""
    """The document chunk (knowledge) or the context (grounded skills)."""
    task: str = ""
    """The leaf's task description (skills) or document outline (knowledge)."""
    examples: tuple[str, ...] = field(default=())
    """The seed answers the teacher was shown (an answer must not copy them)."""
    rivals: tuple[str, ...] = field(default=())
    """Answers the question could be mistaken for (the leaf's facts that share its words)."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    value: float
    """The number the verdict was read from (a log-likelihood difference, a probability)."""
    reason: str


class ChatScorer(Protocol):
    """What a model judge needs of the judge model (labdesk's Engine has it)."""

    def chat_prompt(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str: ...

    def count_tokens(self, text: str) -> int: ...

    def can_score(self) -> bool:
        """Whether `score` gives prompt log-probabilities (else judges ask for a verdict)."""

    def score(
        self, requests: Sequence[ScoreRequest], *, cancel: threading.Event | None = None
    ) -> list[ScoreResult]: ...

    def generate(
        self, requests: Sequence[GenRequest], *, cancel: threading.Event | None = None
    ) -> list[GenResult]: ...


@dataclass(frozen=True)
class Reply:
    """A scored assistant reply: the log-probabilities of its tokens, then of the end marker."""

    answer: list[float]
    end: float | None

    @property
    def mean(self) -> float:
        return sum(self.answer) / max(1, len(self.answer))


def read_reply(model: ChatScorer, request: ScoreRequest, reply: str, result: ScoreResult) -> Reply:
    """Split a scored continuation into the reply's tokens and the marker's first token."""
    n = model.count_tokens(request.prompt + reply) - model.count_tokens(request.prompt)
    n = max(1, min(n, len(result.logprobs)))
    end = result.logprobs[n] if len(result.logprobs) > n else None
    return Reply(result.logprobs[:n], end)


Scored = tuple[ScoreRequest, str]
"""A likelihood a judge needs, and the reply text it scores (the request's continuation is
that text and the end-of-turn marker)."""


def _scored(model: ChatScorer, messages: list[dict[str, str]], reply: str) -> Scored:
    return reply_request(model, messages, reply), reply


class Judge(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def kinds(self) -> frozenset[str]:
        """The leaf kinds it judges."""

    def requests(self, pair: Pair, model: ChatScorer) -> list[Scored]: ...

    def decide(self, pair: Pair, replies: list[Reply]) -> Verdict: ...

    def ask(self, pair: Pair) -> str | None:
        """The judge's question as a yes/no question for a model that cannot be scored (a "yes"
        passes); None for a rule judge."""


# -- prompts the model judges score under --------------------------------------------------

_GENERIC_QUESTION = "Tell me something."


def _with_passage(passage: str, question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{passage.strip()}\n\n{question.strip()}"}]


def _alone(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question.strip()}]


def _shown(pair: Pair) -> str:
    """The pair as a verdict question shows it to the judge."""
    passage = f"Passage:\n{pair.passage.strip()}\n\n" if pair.passage else ""
    return f"{passage}Question: {pair.question.strip()}\nAnswer: {pair.answer.strip()}"


def _gain_verdict(replies: list[Reply], margin: float, cause: str, kept: str) -> Verdict:
    """Pass when the first request makes the answer `margin` nats per token likelier than the
    second: `cause` says what raised it ("the passage makes the answer"), `kept` what passes
    ("grounded answers")."""
    gain = replies[0].mean - replies[1].mean
    if gain < margin:
        return Verdict(
            False,
            gain,
            f"{cause} only {gain:+.2f} nats/token more likely ({kept} gain at least {margin})",
        )
    return Verdict(True, gain, f"{cause} {gain:+.2f} nats/token likelier")


# -- model judges ------------------------------------------------------------------------


@dataclass(frozen=True)
class Grounded:
    """The passage must raise the answer's likelihood by `margin` nats per token."""

    margin: float = 0.3
    name: str = "grounded"
    kinds: frozenset[str] = frozenset({"knowledge", "grounded_skill"})

    def requests(self, pair: Pair, model: ChatScorer) -> list[Scored]:
        return [
            _scored(model, _with_passage(pair.passage, pair.question), pair.answer),
            _scored(model, _alone(pair.question), pair.answer),
        ]

    def decide(self, pair: Pair, replies: list[Reply]) -> Verdict:
        missing = unsupported_details(pair.answer, pair.passage + "\n" + pair.question)
        if missing:
            gain = replies[0].mean - replies[1].mean
            return Verdict(
                False, gain, f"says {', '.join(missing[:3])}, which the passage does not"
            )
        return _gain_verdict(
            replies, self.margin, "the passage makes the answer", "grounded answers"
        )

    def ask(self, pair: Pair) -> str | None:
        return (
            f"{_shown(pair)}\n\nIs everything the answer says stated in the passage? "
            "Reply yes or no."
        )


@dataclass(frozen=True)
class AnswersQuestion:
    """The question must raise the answer's likelihood by `margin` over a generic request.

    Given the passage, as the answer was written; but an answer that is the passage's own text
    (a fact answered by itself) is scored without it, since copying the passage is equally easy
    after any question and would hide what the question adds.
    """

    margin: float = 0.1
    name: str = "answers_question"
    kinds: frozenset[str] = frozenset({"knowledge", "grounded_skill"})

    def requests(self, pair: Pair, model: ChatScorer) -> list[Scored]:
        if normalize(pair.answer) in normalize(pair.passage):
            asked, generic = _alone(pair.question), _alone(_GENERIC_QUESTION)
        else:
            asked = _with_passage(pair.passage, pair.question)
            generic = _with_passage(pair.passage, _GENERIC_QUESTION)
        return [
            _scored(model, asked, pair.answer),
            _scored(model, generic, pair.answer),
        ]

    def decide(self, pair: Pair, replies: list[Reply]) -> Verdict:
        return _gain_verdict(replies, self.margin, "the question makes the answer", "answers to it")

    def ask(self, pair: Pair) -> str | None:
        return f"{_shown(pair)}\n\nDoes the answer answer the question? Reply yes or no."


@dataclass(frozen=True)
class AsksItsFact:
    """A question written for a fact must raise that fact's likelihood more than it raises any
    rival's (`pair.rivals`: the leaf's other facts that share its words), by `margin` nats per
    token: each sentence scored after the question minus after a generic request.

    `answers_question` lets through what any on-topic question does: "How many people live on
    Kelderwick?" makes any sentence about the island a little likelier, the one about lanterns
    too, but the sentence that gives the population likelier still. (Scoring the question after
    each sentence instead was measured worse: a rival that shares the question's words makes
    the question easy to copy, whichever fact it asks about.)
    """

    margin: float = 0.0
    name: str = "asks_its_fact"
    kinds: frozenset[str] = frozenset({"knowledge"})

    def requests(self, pair: Pair, model: ChatScorer) -> list[Scored]:
        if not pair.rivals:  # nothing to compare: nothing to score
            return []
        return [
            _scored(model, _alone(question), sentence)
            for sentence in (pair.answer, *pair.rivals)
            for question in (pair.question, _GENERIC_QUESTION)
        ]

    def decide(self, pair: Pair, replies: list[Reply]) -> Verdict:
        if not pair.rivals:
            return Verdict(True, 0.0, "no other fact to tell it from")
        gains = [replies[i].mean - replies[i + 1].mean for i in range(0, len(replies), 2)]
        best = max(range(len(pair.rivals)), key=lambda i: gains[i + 1])
        lead = gains[0] - gains[best + 1]
        if lead < self.margin:
            return Verdict(
                False,
                lead,
                f"the question fits {quote(pair.rivals[best])} better than its own fact "
                f"({gains[best + 1]:+.2f} against {gains[0]:+.2f} nats/token)",
            )
        return Verdict(True, lead, f"the question fits its fact best ({lead:+.2f} nats/token)")

    def ask(self, pair: Pair) -> str | None:
        return (
            f"Sentence: {pair.answer.strip()}\nQuestion: {pair.question.strip()}\n\n"
            "Does the sentence answer the question? Reply yes or no."
        )


def quote(text: str, words: int = 8) -> str:
    cut = text.split()
    return "“" + " ".join(cut[:words]) + ("…" if len(cut) > words else "") + "”"


@dataclass(frozen=True)
class Finished:
    """The judge must expect the reply to end where it ends: P(end of turn) >= `minimum`."""

    minimum: float = 0.05
    name: str = "finished"
    kinds: frozenset[str] = frozenset({"knowledge", "freeform_skill", "grounded_skill"})

    def requests(self, pair: Pair, model: ChatScorer) -> list[Scored]:
        messages = (
            _with_passage(pair.passage, pair.question) if pair.passage else _alone(pair.question)
        )
        return [_scored(model, messages, pair.answer)]

    def decide(self, pair: Pair, replies: list[Reply]) -> Verdict:
        import math

        end = replies[0].end
        p = math.exp(end) if end is not None else 1.0
        if p < self.minimum:
            return Verdict(
                False, p, f"looks cut off: the judge gives the end of the reply {p:.1%} here"
            )
        return Verdict(True, p, f"ends where expected ({p:.0%})")

    def ask(self, pair: Pair) -> str | None:
        return (
            f"{_shown(pair)}\n\nIs the answer complete, not cut off mid-sentence? Reply yes or no."
        )


@dataclass(frozen=True)
class OnTask:
    """Knowing the skill's task must raise the response's likelihood by `margin`."""

    margin: float = 0.05
    name: str = "on_task"
    kinds: frozenset[str] = frozenset({"freeform_skill", "grounded_skill"})

    def requests(self, pair: Pair, model: ChatScorer) -> list[Scored]:
        request = f"{pair.passage.strip()}\n\n{pair.question}" if pair.passage else pair.question
        with_task = [{"role": "system", "content": pair.task}, *_alone(request)]
        return [
            _scored(model, with_task, pair.answer),
            _scored(model, _alone(request), pair.answer),
        ]

    def decide(self, pair: Pair, replies: list[Reply]) -> Verdict:
        cause = "the skill's task makes the response"
        return _gain_verdict(replies, self.margin, cause, "on-task responses")

    def ask(self, pair: Pair) -> str | None:
        return (
            f"Task: {pair.task.strip()}\n\n{_shown(pair)}\n\nDoes the answer do the task? "
            "Reply yes or no."
        )


# -- rule judges ------------------------------------------------------------------------

_POINTERS = re.compile(
    r"\b(the|this|that|above|given|following)\s+(passage|text|document|paragraph|article|"
    r"excerpt|section|context|story|notes?)\b|\baccording to\b|\bmentioned\b|\bthe author\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+|\d")


@dataclass(frozen=True)
class Standalone:
    """A question asked closed-book must not point at a text and must name its subject."""

    name: str = "standalone"
    kinds: frozenset[str] = frozenset({"knowledge"})

    def requests(self, pair: Pair, model: ChatScorer) -> list[Scored]:
        return []

    def decide(self, pair: Pair, replies: list[Reply]) -> Verdict:
        pointer = _POINTERS.search(pair.question)
        if pointer:
            return Verdict(False, 0.0, f"points at a text the reader cannot see ('{pointer[0]}')")
        if not _NAME.search(pair.question.strip()):
            return Verdict(False, 0.0, "names nothing it is about: it needs the passage")
        return Verdict(True, 1.0, "can be asked without the passage")

    def ask(self, pair: Pair) -> str | None:
        return None


@dataclass(frozen=True)
class NotCopied:
    """The answer must not be the question, a seed example's answer, or the whole passage."""

    similarity: float = 0.8
    name: str = "not_copied"
    kinds: frozenset[str] = frozenset({"knowledge", "freeform_skill", "grounded_skill"})

    def requests(self, pair: Pair, model: ChatScorer) -> list[Scored]:
        return []

    def decide(self, pair: Pair, replies: list[Reply]) -> Verdict:
        answer = _words(pair.answer)
        if _overlap(answer, _words(pair.question)) >= self.similarity:
            return Verdict(False, 1.0, "repeats the question")
        for n, example in enumerate(pair.examples, 1):
            if _overlap(answer, _words(example)) >= self.similarity:
                return Verdict(False, 1.0, f"copies seed example {n}'s answer")
        passage = _words(pair.passage)
        if len(passage) >= 20 and _contained(passage, answer) >= self.similarity:
            return Verdict(False, 1.0, "pastes the passage instead of answering")
        return Verdict(True, 0.0, "its own words")

    def ask(self, pair: Pair) -> str | None:
        return None


def _words(text: str) -> list[str]:
    return normalize(text).split()


def _overlap(a: list[str], b: list[str]) -> float:
    """Word-set Jaccard similarity."""
    sa, sb = set(a), set(b)
    return len(sa & sb) / max(1, len(sa | sb))


def _contained(part: list[str], whole: list[str]) -> float:
    """How much of `part`'s words appear in `whole`."""
    return len(set(part) & set(whole)) / max(1, len(set(part)))


def unsupported_details(answer: str, source: str) -> list[str]:
    """Names and numbers in `answer` that `source` does not contain."""
    have = f" {normalize(source)} "
    return [d for d in names_and_numbers(answer) if f" {normalize(d)} " not in have]


# -- running judges ------------------------------------------------------------------------

MODEL_JUDGES: dict[str, Judge] = {
    j.name: j for j in (Grounded(), AnswersQuestion(), AsksItsFact(), Finished(), OnTask())
}
RULE_JUDGES: dict[str, Judge] = {j.name: j for j in (Standalone(), NotCopied())}


def run_judges(
    judges: Sequence[Judge],
    pairs: Sequence[Pair],
    model: ChatScorer | None,
    cancel: threading.Event | None = None,
) -> list[dict[str, Verdict]]:
    """Every applicable judge's verdict on every pair; all model scoring goes in one batch."""
    if model is not None and not model.can_score():
        return _asked(judges, pairs, model, cancel)
    plan: list[tuple[int, Judge, list[Scored]]] = []
    for index, pair in enumerate(pairs):
        for judge in judges:
            if pair.kind in judge.kinds:
                requests = judge.requests(pair, model) if model is not None else []
                plan.append((index, judge, requests))
    flat = [r for _, _, requests in plan for r, _ in requests]
    if flat and model is None:
        raise ValueError("model judges need a judge model")
    results = model.score(flat, cancel=cancel) if flat and model is not None else []
    verdicts: list[dict[str, Verdict]] = [{} for _ in pairs]
    at = 0
    for index, judge, requests in plan:
        pair = pairs[index]
        scored = results[at : at + len(requests)]
        at += len(requests)
        assert model is not None or not requests
        replies = [
            read_reply(model, r, text, s)  # type: ignore[arg-type]
            for (r, text), s in zip(requests, scored, strict=True)
        ]
        verdicts[index][judge.name] = judge.decide(pair, replies)
    return verdicts


_VERDICT = "(yes|no)"


def _asked(
    judges: Sequence[Judge],
    pairs: Sequence[Pair],
    model: ChatScorer,
    cancel: threading.Event | None,
) -> list[dict[str, Verdict]]:
    """Verdicts from a judge model that can only answer: each question asked at temperature 0,
    constrained to "yes" or "no"; rule judges decide as always."""
    verdicts: list[dict[str, Verdict]] = [{} for _ in pairs]
    asked: list[tuple[int, Judge]] = []
    requests: list[GenRequest] = []
    for index, pair in enumerate(pairs):
        for judge in judges:
            if pair.kind not in judge.kinds:
                continue
            question = judge.ask(pair)
            if question is None:
                verdicts[index][judge.name] = judge.decide(pair, [])
                continue
            prompt = model.chat_prompt([{"role": "user", "content": question}])
            requests.append(GenRequest(prompt, 3, pattern=_VERDICT))
            asked.append((index, judge))
    replies = model.generate(requests, cancel=cancel) if requests else []
    if any(r.finish_reason == "cancelled" for r in replies):
        raise Cancelled("judging stopped; run again to resume")
    for (index, judge), reply in zip(asked, replies, strict=True):
        said = reply.text.strip().lower()
        if said not in ("yes", "no"):
            verdict = Verdict(False, 0.0, f"the judge gave no verdict ({reply.text[:40]!r})")
        else:
            verdict = Verdict(said == "yes", float(said == "yes"), f"the judge model says {said}")
        verdicts[index][judge.name] = verdict
    return verdicts
