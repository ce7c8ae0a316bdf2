"""Requests and results of the generation engine (plain data, no llama.cpp import)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from labdesk.errors import ModelError

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class GenRequest:
    """One completion: a formatted prompt and how to sample it.

    `schema` (a JSON schema) or `pattern` (a small regex) constrain the output through a
    grammar; at temperature 0 decoding is greedy, otherwise top-p sampling seeded by `seed`.
    """

    prompt: str
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None
    pattern: str | None = None

    def __post_init__(self) -> None:
        if self.max_tokens < 1 or self.temperature < 0.0 or not 0.0 < self.top_p <= 1.0:
            raise ModelError(
                f"bad generation settings: max_tokens={self.max_tokens}, "
                f"temperature={self.temperature}, top_p={self.top_p}",
                hint="max_tokens >= 1, temperature >= 0, 0 < top_p <= 1",
            )


@dataclass(frozen=True)
class GenResult:
    """A finished completion; `value` is the parsed, schema-valid JSON of a schema request."""

    text: str
    tokens: int
    prompt_tokens: int
    finish_reason: FinishReason
    value: Any = None


@dataclass(frozen=True)
class ScoreRequest:
    """How likely `continuation` is after `prompt` (for likelihood judges and evaluation).

    The text is tokenized whole, as `prompt + continuation`; the continuation's tokens are
    those after the prompt's own tokens end. Where the prompt's last token merges with the
    continuation's start (a prompt ending mid-word), the merged token is scored as the
    continuation's first: it is the token the model would have to write.
    """

    prompt: str
    continuation: str


@dataclass(frozen=True)
class ScoreResult:
    """The continuation's tokens and each one's natural-log probability given everything
    before it; `prompt_tokens` counts the tokens before them (BOS included)."""

    tokens: list[int]
    logprobs: list[float]
    prompt_tokens: int

    @property
    def total(self) -> float:
        """Log-probability of the whole continuation."""
        return float(sum(self.logprobs))
