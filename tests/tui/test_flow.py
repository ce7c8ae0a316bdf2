"""From taxonomy to a chat with the tuned model, through the app, on the tiny models.

Generation runs the real llama.cpp teacher and judge; whether the tiny teacher's nonsense passes
the judge is the generator's business, so the generate test checks that the screen shows exactly
what landed on disk. The training test then starts from the leaves' own seed examples written in
the generated-sample shape, and walks mix + three LoRA phases (real torch/peft), export to GGUF
and a streamed chat with the result.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import (
    DataTable,
    Input,
    OptionList,
    RichLog,
    Select,
    SelectionList,
    Static,
)

from labdesk.chat import list_sessions, load_session
from labdesk.fileio import read_jsonl, write_jsonl
from labdesk.runs import PHASES, RunPaths
from labdesk.taxonomy import load_taxonomy
from labdesk.tui.app import LabdeskApp
from labdesk.tui.chat_screen import Bubble, ChatScreen
from labdesk.tui.generate_screen import GenerateScreen
from labdesk.tui.jsonl_view import JsonlView
from labdesk.tui.train_screen import TrainScreen
from labdesk.tui.widgets import LossChart

from .conftest import SKIPPED_LEAF
from .helpers import settle, tick_only, until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
LEAF = "compositional_skills/writing/freeform/haiku"


async def test_generate_shows_what_lands_on_disk(home: Path, fast_recipe: Path) -> None:
    app = LabdeskApp(recipe=str(fast_recipe), mode="generate")
    async with app.run_test(size=(150, 48)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, GenerateScreen)
        leaves = screen.query_one("#leaves", SelectionList)
        assert LEAF in leaves.selected  # never generated: preselected as changed
        leaves.deselect_all()
        leaves.select(LEAF)
        await pilot.click("#start")
        await settle(pilot)

        run = RunPaths(app.run_dir)
        slug = LEAF.replace("/", "__")
        accepted = read_jsonl(run.accepted(slug))
        rejected = read_jsonl(run.rejected(slug))
        assert accepted or rejected
        table = screen.query_one("#leaf-table", DataTable)
        assert table.get_cell(LEAF, "accepted") == str(len(accepted))
        assert table.get_cell(LEAF, "rejected") == str(len(rejected))
        assert table.get_cell(LEAF, "status") == "done"
        status = str(screen.query_one("#status", Static).render())
        assert f"{len(accepted)} accepted, {len(rejected)} rejected" in status
        if rejected:  # the log says which step rejected how many
            step = rejected[0]["metadata"]["step"]
            log = " ".join(line.text for line in screen.query_one("#events", RichLog).lines)
            assert f"{step} rejected" in log, log

        # browse what was decided: rejected samples show the judge's reason
        path = run.rejected(slug) if rejected else run.accepted(slug)
        screen.query_one("#sample-file", Select).value = str(path)
        await settle(pilot)
        view = screen.query_one("#samples", JsonlView)
        assert view.count == len(rejected or accepted)
        first = (rejected or accepted)[0]
        row = view.render_line(0).text
        if rejected:
            assert first["metadata"]["reason"][:20] in row
        else:
            assert " ".join(first["messages"][1]["content"].split())[:15] in row

        # the leaf is generated now: no longer preselected
        assert LEAF not in screen.query_one("#leaves", SelectionList).selected


async def test_generate_lists_a_skipped_leaf_unticked(home: Path, skipping_recipe: Path) -> None:
    """A leaf the recipe's `skip_leaves` leaves out is listed as such and not ticked, though
    never generated; ticked by hand alone, it is refused with the fix."""
    app = LabdeskApp(recipe=str(skipping_recipe), mode="generate")
    async with app.run_test(size=(150, 48)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, GenerateScreen)
        leaves = screen.query_one("#leaves", SelectionList)
        options = [leaves.get_option_at_index(i) for i in range(leaves.option_count)]
        others = {o.value for o in options if o.value != SKIPPED_LEAF}
        assert set(leaves.selected) == others  # every other leaf is new: ticked
        (skipped,) = [o for o in options if o.value == SKIPPED_LEAF]
        assert str(skipped.prompt).endswith("(skip_leaves)")

        tick_only(pilot, SKIPPED_LEAF)
        await pilot.click("#start")
        errors = lambda: [n for n in app._notifications if n.severity == "error"]  # noqa: E731
        await until(pilot, lambda: bool(errors()))
        (note,) = errors()
        assert "skip_leaves leaves out every leaf" in note.message and "fix:" in note.message
    assert not RunPaths(app.run_dir).accepted(SKIPPED_LEAF.replace("/", "__")).exists()


def seed_samples(app: LabdeskApp) -> None:
    """The sample leaves' own seeds as accepted samples (the shape `labdesk.runs` documents)."""
    run = RunPaths(app.run_dir)
    for leaf in load_taxonomy(app.taxonomy_root).leaves:
        rows = []
        for i, seed in enumerate(leaf.seeds):
            for j, qa in enumerate(seed.qa):
                chunk = {"document": "seed", "index": i, "text": seed.context}
                rows.append(
                    {
                        "messages": [
                            {"role": "system", "content": ""},
                            {"role": "user", "content": qa.question},
                            {"role": "assistant", "content": qa.answer},
                        ],
                        "metadata": {
                            "leaf": leaf.path,
                            "kind": leaf.kind,
                            "type": "qa",
                            "chunk": chunk if leaf.kind == "knowledge" else None,
                            "context": seed.context if leaf.kind == "grounded_skill" else None,
                            "scores": {},
                            "id": f"{leaf.slug}-{i}-{j}",
                        },
                    }
                )
        write_jsonl(run.accepted(leaf.slug), rows)


async def test_train_export_and_chat(home: Path, fast_recipe: Path) -> None:
    # Seeded chat: the tiny tuned model may end its turn at once (in one run end of turn was its
    # most likely first token, p 0.009 at the chat's temperature of 0.7), and unseeded, this test
    # failed on an empty answer in 3 of 18 runs. With seed 0 the first draw lands at 0.64 of the
    # probability mass, past end of turn (token 0, first in the running sum) unless it holds more.
    app = LabdeskApp(recipe=str(fast_recipe), mode="train", chat_seed=0)
    seed_samples(app)
    async with app.run_test(size=(150, 48)) as pilot:
        await settle(pilot)
        run = RunPaths(app.run_dir)
        train = app.screen
        assert isinstance(train, TrainScreen)
        plan = str(train.query_one("#plan", Static).render())
        assert all(phase in plan for phase in PHASES), plan
        await pilot.click("#start")
        await settle(pilot)
        assert (run.final_adapter / "adapter_config.json").is_file()
        phases = train.query_one("#phases", DataTable)
        for phase in PHASES:
            steps = read_jsonl(run.phase_dir(phase) / "loss.jsonl")
            chart = train.query_one(f"#loss-{phase}", LossChart)
            assert steps and chart.losses == [s["loss"] for s in steps]
            assert phases.get_cell(phase, "state") == "done"

        await pilot.click("#export")
        await settle(pilot)
        assert "ready" in str(train.query_one("#status", Static).render())

        # chat with the tuned model: the answer streams into the conversation and is saved
        await app.switch_mode("chat")
        await settle(pilot)
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        assert chat.model is not None and chat.model.name == app.run_name
        chat.query_one("#prompt", Input).focus()
        await pilot.press(*"Write a haiku about rain", "enter")
        await settle(pilot)
        bubbles = list(chat.query_one("#tuned-pane").query(Bubble))
        assert [b.role for b in bubbles] == ["user", "assistant"]
        assert bubbles[1].text.strip()
        (name,) = list_sessions(app.workspace.chats)
        saved = load_session(app.workspace.chats, name)
        assert saved.turns[-1].content == bubbles[1].text

        # side by side: the base model answers the same question in its own pane
        await pilot.click("#compare")
        assert chat.has_class("-compare")
        chat.query_one("#prompt", Input).focus()
        await pilot.press(*"And about snow?", "enter")
        await settle(pilot)
        base = list(chat.query_one("#base-pane").query(Bubble))
        assert [b.role for b in base] == ["user", "assistant"] and base[1].who == "base model"
        assert base[1].text.strip()
        assert len(chat.query_one("#tuned-pane").query(Bubble)) == 4

        # a saved conversation comes back from the list
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert not chat.query_one("#tuned-pane").query(Bubble)
        sessions = chat.query_one("#sessions", OptionList)
        assert sessions.option_count == 1
        sessions.highlighted = 0
        sessions.action_select()
        await settle(pilot)
        restored = [b.text for b in chat.query_one("#tuned-pane").query(Bubble)]
        assert restored == [t.content for t in load_session(app.workspace.chats, name).turns]
