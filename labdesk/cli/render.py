"""Render core `Event`s in the terminal.

In a terminal: one progress line per stage (what it works on now, how far, elapsed, ETA), with
messages and warnings printed above the lines. Piped or logged: one plain line per event, as it
happens (progress lines thinned out to a few per item), so a log shows where a run is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from labdesk.events import Event
from labdesk.pathtext import tail_path

# soft_wrap: long lines (paths above all) stay whole when output is piped or logged.
console = Console(soft_wrap=True)
console_err = Console(stderr=True, soft_wrap=True)

LEAF_WIDTH = 36
"""Leaf paths are shown by their end (`…/freeform/haiku`): it is what tells them apart."""
LOG_EVERY_S = 15.0
"""Piped, an item's progress is logged at least this often, and at each tenth of it (at most
every `LOG_GAP_S`), besides its first and last step."""
LOG_GAP_S = 3.0


@dataclass
class _Stage:
    """How far one stage is: its own count (leaves, phases) and the item it works on now."""

    began: float = field(default_factory=time.monotonic)
    outer: tuple[int, int] | None = None
    item: str = ""
    inner: tuple[int, int] | None = None
    item_began: float = field(default_factory=time.monotonic)
    eta_s: float | None = None
    """The stage's own estimate (the trainer's), preferred to a straight-line guess."""
    extras: str = ""
    logged_at: float = 0.0
    logged_fraction: float = -1.0
    logged: tuple[str, tuple[int, int] | None, tuple[int, int] | None] | None = None
    """What the last logged line said (item, outer, inner): a line is never repeated."""

    def fraction(self) -> float | None:
        inner = self.inner[0] / self.inner[1] if self.inner and self.inner[1] else None
        if self.outer and self.outer[1]:
            return min(1.0, (self.outer[0] + (inner or 0.0)) / self.outer[1])
        return inner

    def counts(self) -> str:
        count = self.outer if self.outer and self.outer[1] else self.inner
        if not count:
            return ""
        if count[1] >= 10**6:  # bytes of a download
            return f"{count[0] / 2**20:.0f}/{count[1] / 2**20:.0f} MiB"
        return f"{count[0]}/{count[1]}"

    def eta(self) -> float | None:
        if self.eta_s is not None:
            return self.eta_s
        fraction = self.fraction()
        began = self.began if self.outer else self.item_began
        spent = time.monotonic() - began
        if not fraction or spent < 1.0:
            return None
        return spent * (1.0 - fraction) / fraction


class ProgressRenderer:
    """A `Reporter` that keeps one line per stage in a terminal, and logs lines when piped."""

    def __init__(self, console_: Console | None = None) -> None:
        self.console = console_ or console_err
        self.live = self.console.is_terminal
        self._stages: dict[str, _Stage] = {}
        self._tasks: dict[str, TaskID] = {}
        self._began = time.monotonic()
        self.progress = Progress(
            TextColumn("[bold]{task.description:<8}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[counts]:>7}"),
            TextColumn("{task.fields[now]}"),
            TextColumn("[dim]{task.fields[clock]}"),
            console=self.console,
            transient=False,
        )

    def __enter__(self) -> ProgressRenderer:
        if self.live:
            self.progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.live:
            self.progress.stop()

    def __call__(self, event: Event) -> None:
        if event.kind in ("message", "warning") or (event.message and event.kind != "progress"):
            self._say(event)
        if event.done is None and event.total is None:
            return
        stage = self._stages.setdefault(event.stage, _Stage())
        _advance(stage, event)
        if self.live:
            self._draw(event.stage, stage)
        else:
            self._log(event.stage, stage)

    # terminal ------------------------------------------------------------------------------
    def _draw(self, name: str, stage: _Stage) -> None:
        fraction = stage.fraction()
        fields = {
            "counts": stage.counts(),
            "now": escape(" · ".join(p for p in (stage.item, stage.extras) if p)),
            "clock": _clock_text(time.monotonic() - stage.began, stage.eta()),
        }
        if name not in self._tasks:
            self._tasks[name] = self.progress.add_task(name, total=1.0, **fields)  # type: ignore[arg-type]
        task = self._tasks[name]
        self.progress.update(task, completed=fraction or 0.0)
        self.progress.update(task, total=None if fraction is None else 1.0)
        self.progress.update(task, **fields)  # type: ignore[arg-type]

    # piped ---------------------------------------------------------------------------------
    def _log(self, name: str, stage: _Stage) -> None:
        now = time.monotonic()
        fraction = stage.fraction() or 0.0
        said = (stage.item, stage.outer, stage.inner)
        item_ends = stage.inner is not None and stage.inner[0] >= stage.inner[1]
        due = said != stage.logged and (
            stage.logged is None
            or said[0] != stage.logged[0]  # a new item: its first line
            or said[1] != stage.logged[1]  # the stage's own count moved
            or item_ends  # and its last
            or (fraction >= stage.logged_fraction + 0.1 and now - stage.logged_at >= LOG_GAP_S)
            or now - stage.logged_at >= LOG_EVERY_S
        )
        if not due:
            return
        stage.logged_at, stage.logged_fraction, stage.logged = now, fraction, said
        parts = [f"{name} {stage.counts()}".strip(), stage.item, stage.extras]
        eta = stage.eta()
        if eta is not None:
            parts.append(f"eta {_clock(eta)}")
        self.console.print(
            f"{self._stamp()} " + " · ".join(escape(p) for p in parts if p), highlight=False
        )

    def _say(self, event: Event) -> None:
        where = f"{tail_path(event.leaf, LEAF_WIDTH)}: " if event.leaf else ""
        if event.stage == "run" and event.kind == "start":
            text = f"[bold]▶ {escape(event.message)}[/]"
        else:
            style = {"warning": "yellow", "done": "green"}.get(event.kind, "dim")
            text = f"[{style}]{escape(event.stage)}: {escape(where + event.message)}[/]"
        stamp = "" if self.live else f"{self._stamp()} "
        self.console.print(stamp + text, highlight=False)

    def _stamp(self) -> str:
        return f"[{_clock(time.monotonic() - self._began)}]"


def _advance(stage: _Stage, event: Event) -> None:
    """Fold one event into the stage's state."""
    if event.leaf is None and (
        event.step is None or (stage.outer is not None and stage.outer[1] == event.total)
    ):
        # the stage's own count (leaves, phases): a step may name the item it just counted
        if event.total:
            stage.outer = (event.done or 0, event.total)
            stage.inner = None
        stage.item, stage.extras = event.step or "", ""
        return
    item = " · ".join(
        p for p in (tail_path(event.leaf, LEAF_WIDTH) if event.leaf else None, event.step) if p
    )
    if item != stage.item:
        stage.item, stage.item_began = item, time.monotonic()
    if event.total:
        stage.inner = (event.done or 0, event.total)
    eta = event.metrics.get("eta_s")
    stage.eta_s = float(eta) if eta is not None else None
    stage.extras = _extras(event)


def _extras(event: Event) -> str:
    parts = []
    if event.accepted is not None:
        parts.append(f"{event.accepted} kept")
    if event.rejected is not None:
        parts.append(f"{event.rejected} dropped")
    if "loss" in event.metrics:
        parts.append(f"loss {event.metrics['loss']:.3f}")
    return " ".join(parts)


def _clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _clock_text(elapsed: float, eta: float | None) -> str:
    return _clock(elapsed) + (f" · eta {_clock(eta)}" if eta is not None else "")
