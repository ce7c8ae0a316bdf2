"""The taxonomy screen, driven like a person would: new leaf, fill seeds, watch the checks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from textual.widgets import Input, Static, TextArea

from labdesk.taxonomy import validate_file
from labdesk.taxonomy.upstream import upstream_check
from labdesk.tui.app import LabdeskApp
from labdesk.tui.leaf_editor import FieldBox, LeafEditor, field_id
from labdesk.tui.taxonomy_screen import NewLeafDialog, TaxonomyScreen

from .helpers import settle, tree_labels

SIZE = (140, 50)
pytestmark = pytest.mark.anyio


async def test_tree_shows_every_sample_leaf_with_kind_seeds_and_verdict(
    workspace_home: Path,
) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaxonomyScreen)
        labels = tree_labels(screen)
        leaves = sorted(app.taxonomy_root.rglob("qna.yaml"))
        assert len(labels) == len(leaves) >= 3
        assert all(label.startswith("✓") for label in labels), labels
        assert any("knowledge·" in label for label in labels)
        assert any("freeform·" in label for label in labels)


async def test_new_leaf_from_template_to_a_valid_upstream_file(
    workspace_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, NewLeafDialog)
        await pilot.click("#folder")
        await pilot.press(*"writing/freeform/limericks")
        await pilot.click("#create")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaxonomyScreen)
        editor = screen.query_one(LeafEditor)
        file = app.taxonomy_root / "compositional_skills/writing/freeform/limericks/qna.yaml"
        assert editor.file == file and file.is_file()

        # the empty template is invalid, and the errors sit at the fields they are about
        summary = editor.query_one("#summary", Static)
        assert summary.has_class("-error")
        description = editor.query_one("#box-task_description", FieldBox)
        assert description.has_class("-error")

        # type the description with the keyboard: the word count follows, the error clears
        editor.query_one(f"#{field_id(('task_description',))}", TextArea).focus()
        await pilot.press(*"Write a limerick about the subject named.")
        editor.validate_now()
        await settle(pilot)
        assert not description.has_class("-error")

        editor.query_one(f"#{field_id(('created_by',))}", Input).value = "tester"
        for i in range(5):
            editor.query_one(
                f"#{field_id(('seed_examples', i, 'question'))}", TextArea
            ).text = f"Write a limerick about a cat number {i + 1}."
            editor.query_one(f"#{field_id(('seed_examples', i, 'answer'))}", TextArea).text = (
                "There once was a cat on a mat,\nwho grew most remarkably fat,\n"
                "she ate all the cream,\nthen dozed in a dream,\nand that was the end of that."
            )
        editor.validate_now()
        await settle(pilot)
        assert not [p for p in editor.problems if p.severity == "error"], editor.problems
        assert summary.has_class("-clean") or not summary.has_class("-error")

        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not editor.dirty
        assert not [p for p in validate_file(file) if p.severity == "error"]
        assert "answer: |\n" in file.read_text(encoding="utf-8")
        # the tree re-checked the saved file: no error mark (a warning asks to fill attribution.txt)
        (label,) = [x for x in tree_labels(screen) if "writing/freeform/limericks" in x]
        assert label[0] in "✓!", label
        assert "# your GitHub user name" in file.read_text(encoding="utf-8")  # comments kept

    # upstream's own parser (it shells out to yamllint, so the venv's bin goes on PATH)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    verdict = upstream_check(file)
    assert verdict.valid, verdict


async def test_seeds_can_be_added_moved_and_removed(workspace_home: Path) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaxonomyScreen)
        await screen.open_leaf("compositional_skills/writing/freeform/haiku/qna.yaml")
        await settle(pilot)
        editor = screen.query_one(LeafEditor)
        count = len(editor.form.seeds)
        first, second = editor.form.seeds[0].qa[0].question, editor.form.seeds[1].qa[0].question
        await editor.restructure("down", 0)
        assert [s.qa[0].question for s in editor.form.seeds[:2]] == [second, first]
        await editor.restructure("add-seed", 0)
        await editor.restructure("del", 0)
        assert len(editor.form.seeds) == count
        await settle(pilot)
        # the new seed is empty: its fields carry the errors
        last = count - 1
        assert editor.query_one(f"#box-seed_examples-{last}-question", FieldBox).has_class("-error")
        # the edits are unsaved: the tree marks the leaf first thing (test_no_loss.py has the
        # questions asked before anything unsaved could be dropped)
        await settle(pilot)
        assert any(label.startswith("●") and "haiku" in label for label in tree_labels(screen))


async def test_external_editor_failure_is_a_notification_not_a_crash(workspace_home: Path) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaxonomyScreen)
        await screen.open_leaf("compositional_skills/writing/freeform/haiku/qna.yaml")
        await pilot.press("ctrl+e")  # headless: there is no terminal to hand to an editor
        await pilot.pause()
        assert app.is_running
        assert any(n.severity == "error" for n in app._notifications)


async def test_a_broken_leaf_is_marked_and_explained(workspace_home: Path) -> None:
    app = LabdeskApp()
    broken = app.taxonomy_root / "compositional_skills" / "broken" / "qna.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text("version: 3\ncreated_by: me\nseed_examples: [\n", encoding="utf-8")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaxonomyScreen)
        (label,) = [x for x in tree_labels(screen) if "broken" in x]
        assert label.startswith("✗")
        await screen.open_leaf("compositional_skills/broken/qna.yaml")
        await pilot.pause()
        (note,) = [n for n in app._notifications if n.severity == "error"]
        assert note.title == "TaxonomyError" and "qna.yaml:" in note.message
        assert screen.current == "compositional_skills/broken/qna.yaml"  # ctrl+e can open it
