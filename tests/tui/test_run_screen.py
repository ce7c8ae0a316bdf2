"""'Run all' in the app: the same flow as `labdesk run`, shown stage by stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, Static

from labdesk.runs import RunPaths
from labdesk.tui.app import LabdeskApp
from labdesk.tui.run_screen import STAGES, RunScreen

from .helpers import settle

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_run_all_runs_every_stage_then_skips_them(home: Path, fast_recipe: Path) -> None:
    app = LabdeskApp(recipe=str(fast_recipe), mode="run")
    async with app.run_test(size=(150, 48)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RunScreen)
        await pilot.press("ctrl+r")
        await settle(pilot)

        table = screen.query_one("#stages", DataTable)
        assert [table.get_cell(s, "state") for s in STAGES] == ["ran"] * len(STAGES)
        state = json.loads((RunPaths(app.run_dir).root / "state.json").read_text())
        assert all(state[s]["status"] == "done" for s in STAGES)
        summary = str(screen.query_one("#summary", Static).render())
        assert "model:" in summary and "loss knowledge_1" in summary

        await pilot.click("#start")  # nothing changed: every stage but the check is skipped
        await settle(pilot)
        assert [table.get_cell(s, "state") for s in STAGES] == ["ran"] + ["skipped"] * 5
