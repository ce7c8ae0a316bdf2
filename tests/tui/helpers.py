"""Waiting for the app the way a person waits: until its workers are done, never by the clock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot
from textual.worker import WorkerCancelled, WorkerFailed, WorkerState


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until no worker runs (a worker replaced by a newer exclusive one counts as done)."""
    while True:
        await pilot.pause()
        busy = [
            w for w in pilot.app.workers if w.state in (WorkerState.PENDING, WorkerState.RUNNING)
        ]
        if not busy:
            break
        for worker in busy:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await worker.wait()
    await pilot.pause()


def tick_only(pilot: Pilot[Any], leaf: str) -> Any:
    """On the generate screen, tick just `leaf`; returns the screen."""
    from textual.widgets import SelectionList

    from labdesk.tui.generate_screen import GenerateScreen

    screen = pilot.app.screen
    assert isinstance(screen, GenerateScreen)
    leaves = screen.query_one("#leaves", SelectionList)
    leaves.deselect_all()
    leaves.select(leaf)
    return screen


async def until(pilot: Pilot[Any], done: Callable[[], bool], timeout: float = 120.0) -> None:
    """Let the app run until `done()` holds (a worker's result arrives on the UI thread)."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "the app never got there"
        await pilot.pause(0.05)


def tree_labels(screen: Any) -> list[str]:
    """The taxonomy screen's leaf labels, as shown (verdict or unsaved mark first)."""
    from textual.widgets import Tree

    tree = screen.query_one("#leaves", Tree)
    return [leaf.label.plain for group in tree.root.children for leaf in group.children]
