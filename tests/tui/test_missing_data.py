"""Mix + train asks first when leaves have no accepted samples, naming them (issue 16: a
generation cancelled after one leaf, then `mix {"knowledge_1": 0, ...}` and "done")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from labdesk.fileio import read_jsonl, write_jsonl
from labdesk.runs import RunPaths
from labdesk.taxonomy import load_taxonomy
from labdesk.tui.app import LabdeskApp
from labdesk.tui.train_screen import TrainScreen
from labdesk.tui.widgets import Question

from .conftest import SKIPPED_LEAF
from .helpers import settle, until
from .test_flow import seed_samples

pytestmark = pytest.mark.anyio
SIZE = (140, 45)


async def _start(pilot: Pilot[Any], app: LabdeskApp) -> TrainScreen:
    """The train screen, once its Start (mix and train) has been pressed."""
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, TrainScreen)
    await pilot.click("#start")
    await settle(pilot)
    return screen


async def test_mix_and_train_asks_about_leaves_without_samples(
    home: Path, fast_recipe: Path
) -> None:
    app = LabdeskApp(recipe=str(fast_recipe), mode="train")
    seed_samples(app)
    run = RunPaths(app.run_dir)
    knowledge = [
        leaf for leaf in load_taxonomy(app.taxonomy_root).leaves if leaf.kind == "knowledge"
    ]
    for leaf in knowledge:  # as if generation had stopped before the knowledge leaves
        write_jsonl(run.accepted(leaf.slug), [])
    async with app.run_test(size=SIZE) as pilot:
        screen = await _start(pilot, app)
        question = app.screen
        assert isinstance(question, Question)
        text = str(question.query_one("#text", Static).render())
        assert f"{len(knowledge)} of " in text and all(leaf.path in text for leaf in knowledge)
        await pilot.click("#answer-cancel")
        await settle(pilot)
        assert screen.job is None and not run.mixed.exists()

        await pilot.click("#start")
        await settle(pilot)
        await pilot.click("#answer-without")
        await until(pilot, lambda: screen.job is not None)  # the answer arrives as a message
        assert screen.job is not None
        screen.job.pause()  # held at its first event, after the lock and the recipe
        screen.action_stop()
        await settle(pilot)
    assert run.phase_data("skills").is_file()  # mixed from what there is


async def test_a_leaf_the_recipe_skips_is_neither_asked_about_nor_mixed(
    home: Path, skipping_recipe: Path
) -> None:
    """With `skip_leaves`, the train screen works on the leaves `labdesk mix` works on: samples
    of a skipped leaf still in the run are refused with the fix, and once generation has
    removed them, mixing starts without asking about the skipped leaf."""
    app = LabdeskApp(recipe=str(skipping_recipe), mode="train")
    seed_samples(app)
    run = RunPaths(app.run_dir)
    haiku = load_taxonomy(app.taxonomy_root).leaf(SKIPPED_LEAF)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _start(pilot, app)
        (note,) = [n for n in app._notifications if n.severity == "error"]
        assert f"still holds samples of {SKIPPED_LEAF}" in note.message
        assert "labdesk generate" in note.message
        assert app.screen is screen and screen.job is None and not run.mixed.exists()
        assert str(screen.query_one("#status", Static).render()) == "idle"

        run.accepted(haiku.slug).unlink()  # as generating the run again does
        await pilot.click("#start")
        await until(pilot, lambda: run.phase_data("skills").is_file())  # no question first
        assert not isinstance(app.screen, Question)
        assert screen.job is not None
        screen.action_stop()
        await until(pilot, lambda: screen.job is None)
    mixed = read_jsonl(run.phase_data("skills"))
    assert mixed and not [s for s in mixed if s["metadata"].get("leaf") == SKIPPED_LEAF]
