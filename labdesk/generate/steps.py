"""The three kinds of pipeline step: the teacher writes, a rule checks, a judge scores.

A `Write` step sends one prompt per live candidate to the teacher (or the judge) (all of a leaf's candidates in
one batch, so the engine's parallel slots stay full) and stores the reply, plain text, in one
field. Prompts are either a chat (the model's own template) or a completion: a few-shot text the
reply continues, the form small models follow best; the reply ends at a separator line. A reply
that reaches its token budget before it ends is cut off, and rejected as such.

A `Check` is model-free and runs over the live candidates in index order, so its decisions
(duplicates, above all) are reproducible. A `Judged` step asks one judge of
`labdesk.generate.judges` about every live candidate at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from labdesk.generate.candidates import Candidate, SampleType
from labdesk.generate.judges import Judge, Pair
from labdesk.taxonomy.leaves import Seed

Role = Literal["teacher", "judge"]
Style = Literal["chat", "completion"]
Variables = Callable[[Candidate], dict[str, str]]
ShowExamples = Callable[[list[Seed]], str]
Messages = Callable[[Candidate, str], list[dict[str, str]]]
"""Chat steps: the conversation to send, given the rendered user message."""


@dataclass(frozen=True)
class Write:
    name: str
    field: str
    """Where the reply goes: question, answer or context."""
    templates: Mapping[SampleType, str]
    """Template per candidate type; candidates of other types skip the step."""
    variables: Variables
    style: Style = "chat"
    examples: ShowExamples | None = None
    """How the candidate's seed examples are shown as `$examples` (dropped one by one to fit)."""
    messages: Messages | None = None
    """Chat steps whose examples are earlier turns (skills): the whole conversation."""
    short: frozenset[SampleType] = frozenset()
    """Types whose reply gets `short_tokens` (a question, a fact's answer), not `max_new_tokens`."""
    words: float = 0.6
    """Words the prompt asks for, per token of budget (`$words`): the length is stated."""
    lead: Callable[[Candidate], str] | None = None
    """Completion steps: the opening the prompt ends with and the reply continues (a question's
    first words); the field holds opening and reply together."""
    role: Role = "teacher"
    """Who writes: the teacher, or the judge checking a candidate by answering it itself."""
    greedy: bool = False
    """Decode at temperature 0 (a check wants the model's likeliest reply, not a varied one)."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Candidate], str | None]
    types: frozenset[SampleType] = frozenset({"qa", "summary"})


@dataclass(frozen=True)
class Judged:
    judge: Judge
    pair: Callable[[Candidate], Pair]
    types: frozenset[SampleType] = frozenset({"qa"})

    @property
    def name(self) -> str:
        return f"judge_{self.judge.name}"


Step = Write | Check | Judged
