"""Waiting for the app the way a person waits: until its workers are done, never by the clock."""

from __future__ import annotations

import contextlib
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
