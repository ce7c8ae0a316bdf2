"""The small progress protocol every long stage reports through.

Core code never prints: it calls a `Reporter` with `Event`s. The CLI renders them as progress
bars, the TUI as widgets. One flat event type keeps both front ends simple.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal["start", "progress", "done", "message", "warning"]


@dataclass(frozen=True)
class Event:
    stage: str
    """Which stage speaks: "taxonomy", "generate", "mix", "train", "export", "evaluate", ..."""
    kind: EventKind = "progress"
    message: str = ""
    leaf: str | None = None
    step: str | None = None
    """A named step inside the stage (a pipeline step, a training phase, a tensor)."""
    done: int | None = None
    total: int | None = None
    accepted: int | None = None
    rejected: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Numbers worth showing: loss, lr, tokens_per_s, memory_gb, eta_s, ..."""


Reporter = Callable[[Event], None]


def null_reporter(event: Event) -> None:
    """A reporter that drops everything (the default for library calls)."""
