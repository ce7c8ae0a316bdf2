"""Mix + train asks first when leaves have no accepted samples, naming them (issue 16: a
generation cancelled after one leaf, then `mix {"knowledge_1": 0, ...}` and "done")."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from labdesk.fileio import write_jsonl
from labdesk.runs import RunPaths
from labdesk.taxonomy import load_taxonomy
from labdesk.tui.app import LabdeskApp
from labdesk.tui.train_screen import TrainScreen
from labdesk.tui.widgets import Question

from .helpers import settle, until
from .test_flow import seed_samples

pytestmark = pytest.mark.anyio
SIZE = (140, 45)


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
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        await pilot.click("#start")
        await settle(pilot)
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
