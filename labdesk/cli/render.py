"""Render core `Event`s in the terminal: rich progress bars plus warnings and messages."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from labdesk.events import Event

# soft_wrap: long lines (paths above all) stay whole when output is piped or logged.
console = Console(soft_wrap=True)
console_err = Console(stderr=True, soft_wrap=True)


class ProgressRenderer:
    """A `Reporter` that keeps one bar per (stage, leaf, step) and prints messages above them."""

    def __init__(self, console_: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console_ or console_err,
            transient=False,
        )
        self._tasks: dict[tuple[str, str | None, str | None], TaskID] = {}

    def __enter__(self) -> ProgressRenderer:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def __call__(self, event: Event) -> None:
        if event.kind in ("message", "warning"):
            style = "yellow" if event.kind == "warning" else "dim"
            where = f"{event.leaf}: " if event.leaf else ""
            self._progress.console.print(f"[{style}]{escape(where + event.message)}[/]")
            return
        if event.total is None and event.done is None:
            return
        key = (event.stage, event.leaf, event.step)
        label = " · ".join(p for p in (event.stage, event.leaf, event.step) if p)
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(label, total=event.total, extra="")
        extra = _extras(event)
        self._progress.update(
            self._tasks[key], completed=event.done or 0, total=event.total, extra=extra
        )


def _extras(event: Event) -> str:
    parts = []
    if event.accepted is not None:
        parts.append(f"[green]{event.accepted}✓[/]")
    if event.rejected is not None:
        parts.append(f"[red]{event.rejected}✗[/]")
    for name, value in event.metrics.items():
        parts.append(f"{name}={value:.4g}")
    return " ".join(parts)
