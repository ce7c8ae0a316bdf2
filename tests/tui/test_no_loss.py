"""A person's work is never lost without a question: each way edits used to vanish, driven with
the keyboard and mouse as a person would (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button, Input, OptionList, TextArea

from labdesk.chat import ChatSession, Turn, save_session
from labdesk.chat.chatter import NO_ANSWER
from labdesk.tui.app import LabdeskApp
from labdesk.tui.chat_screen import Bubble, ChatScreen
from labdesk.tui.leaf_editor import FieldBox, LeafEditor, field_id
from labdesk.tui.taxonomy_screen import TaxonomyScreen
from labdesk.tui.widgets import Question
from labdesk.workspace import Workspace

from .helpers import settle, tree_labels

pytestmark = pytest.mark.anyio
SIZE = (140, 45)
HAIKU = "compositional_skills/writing/freeform/haiku/qna.yaml"
EMAIL = "compositional_skills/writing/freeform/email_tone/qna.yaml"
GROUNDED = "compositional_skills/extraction/grounded/meeting_action_items/qna.yaml"


async def open_leaf(pilot, rel: str = HAIKU) -> tuple[TaxonomyScreen, LeafEditor]:  # type: ignore[no-untyped-def]
    """Let the app settle on its taxonomy screen, then open `rel` there."""
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, TaxonomyScreen)
    await screen.open_leaf(rel)
    await settle(pilot)
    return screen, screen.query_one(LeafEditor)


async def open_with_edit(pilot, rel: str = HAIKU, name: str = "someone-else") -> LeafEditor:  # type: ignore[no-untyped-def]
    """Open `rel` and type a new created_by into it, with the keyboard."""
    _, editor = await open_leaf(pilot, rel)
    field = editor.query_one(f"#{field_id(('created_by',))}", Input)
    field.focus()
    field.value = ""
    await pilot.press(*name)
    await settle(pilot)
    assert editor.dirty
    return editor


async def answer(pilot, choice: str) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(pilot.app.screen, Question), pilot.app.screen
    await pilot.click(f"#answer-{choice}")
    await settle(pilot)


async def test_quitting_with_unsaved_edits_asks(workspace_home: Path) -> None:
    app = LabdeskApp()
    file = app.taxonomy_root / HAIKU
    before = file.read_text(encoding="utf-8")
    async with app.run_test(size=SIZE) as pilot:
        await open_with_edit(pilot)
        await pilot.press("ctrl+q")
        await settle(pilot)
        await answer(pilot, "cancel")  # stay: the app runs on, the edit is still there
        assert app.is_running
        assert file.read_text(encoding="utf-8") == before
        await pilot.press("ctrl+q")
        await settle(pilot)
        await answer(pilot, "save")
    assert app.return_code == 0
    assert "created_by: someone-else" in file.read_text(encoding="utf-8")


async def test_quitting_and_discarding_leaves_the_file_alone(workspace_home: Path) -> None:
    app = LabdeskApp()
    file = app.taxonomy_root / HAIKU
    before = file.read_text(encoding="utf-8")
    async with app.run_test(size=SIZE) as pilot:
        await open_with_edit(pilot)
        await app.switch_mode("generate")  # quitting from another screen asks just the same
        await settle(pilot)
        await pilot.press("ctrl+q")
        await settle(pilot)
        await answer(pilot, "discard")
    assert file.read_text(encoding="utf-8") == before


async def test_opening_another_leaf_asks_and_the_marker_shows(workspace_home: Path) -> None:
    app = LabdeskApp()
    file = app.taxonomy_root / HAIKU
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_with_edit(pilot)
        screen = app.screen
        assert isinstance(screen, TaxonomyScreen)
        # the unsaved mark leads the label, so even an 80-column tree shows it
        (haiku,) = [label for label in tree_labels(screen) if "haiku" in label]
        assert haiku.startswith("●"), haiku
        assert "● unsaved" in str(editor.query_one("#summary").render())

        await screen.open_leaf(EMAIL)
        await settle(pilot)
        await answer(pilot, "cancel")
        assert screen.query_one(LeafEditor) is editor and editor.form.created_by == "someone-else"

        await screen.open_leaf(EMAIL)
        await settle(pilot)
        await answer(pilot, "save")
        assert screen.query_one(LeafEditor).rel == EMAIL
        assert "created_by: someone-else" in file.read_text(encoding="utf-8")
        assert not any(label.startswith("●") for label in tree_labels(screen))


async def test_removing_a_seed_asks(workspace_home: Path) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        _, editor = await open_leaf(pilot)
        count = len(editor.form.seeds)
        await pilot.click("#del-1")
        await settle(pilot)
        await answer(pilot, "keep")
        assert len(editor.form.seeds) == count and not editor.dirty
        second = editor.form.seeds[1].qa[0].question
        await pilot.click("#del-1")
        await settle(pilot)
        await answer(pilot, "remove")
        assert len(editor.form.seeds) == count - 1
        assert second not in [s.qa[0].question for s in editor.form.seeds]


async def test_tab_from_the_description_never_reaches_the_seed_buttons(
    workspace_home: Path,
) -> None:
    """Typing text with spaces while Tab moves on used to press ✕ and remove seeds."""
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        _, editor = await open_leaf(pilot)
        count = len(editor.form.seeds)
        editor.query_one(f"#{field_id(('task_description',))}", TextArea).focus()
        visited = []
        for _ in range(2 * count + 2):
            await pilot.press("tab")
            visited.append(app.focused)
            await pilot.press(*" a b ")  # spaces press a focused button
        await settle(pilot)
        assert len(editor.form.seeds) == count
        assert not any(
            isinstance(w, Button) and (w.id or "").startswith(("up-", "down-", "del-"))
            for w in visited
        ), [w.id for w in visited if w is not None]
        # Tab goes from one seed's question to its answer, then to the next seed's question
        ids = [w.id for w in visited if w is not None]
        assert ids[:3] == [
            field_id(("seed_examples", 0, "question")),
            field_id(("seed_examples", 0, "answer")),
            field_id(("seed_examples", 1, "question")),
        ], ids


async def test_a_clean_form_reloads_when_its_file_changes_on_disk(workspace_home: Path) -> None:
    """Fixed from the shell, then ctrl+r: the form shows the fix; ctrl+s keeps it."""
    app = LabdeskApp()
    file = app.taxonomy_root / HAIKU
    async with app.run_test(size=SIZE) as pilot:
        screen, _ = await open_leaf(pilot)
        fixed = file.read_text(encoding="utf-8").replace("created_by: labdesk", "created_by: shell")
        file.write_text(fixed, encoding="utf-8")
        await pilot.press("ctrl+r")
        await settle(pilot)
        editor = screen.query_one(LeafEditor)
        assert editor.query_one(f"#{field_id(('created_by',))}", Input).value == "shell"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert file.read_text(encoding="utf-8") == fixed


async def test_unsaved_edits_over_a_changed_file_are_never_saved_silently(
    workspace_home: Path,
) -> None:
    app = LabdeskApp()
    file = app.taxonomy_root / HAIKU
    async with app.run_test(size=SIZE) as pilot:
        editor = await open_with_edit(pilot)
        fixed = file.read_text(encoding="utf-8").replace("Cold handlebars", "Warm handlebars")
        file.write_text(fixed, encoding="utf-8")
        await pilot.press("ctrl+r")  # over unsaved edits: asks instead of reloading
        await settle(pilot)
        await answer(pilot, "keep")
        assert editor.form.created_by == "someone-else"
        await pilot.press("ctrl+s")  # saving asks before it overwrites the newer file
        await settle(pilot)
        await answer(pilot, "cancel")
        assert file.read_text(encoding="utf-8") == fixed
        await pilot.press("ctrl+s")
        await settle(pilot)
        await answer(pilot, "reload")
        reloaded = app.screen.query_one(LeafEditor)
        assert reloaded.form.created_by == "labdesk" and not reloaded.dirty
        assert reloaded.form.seeds[0].qa[0].answer.startswith("Warm handlebars")
    assert file.read_text(encoding="utf-8") == fixed


async def test_typing_after_create_lands_in_the_first_field(workspace_home: Path) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await pilot.press(*"writing/odes", "enter")
        await settle(pilot)
        await pilot.press(*"someone")  # no Tab, no click
        await settle(pilot)
        editor = app.screen.query_one(LeafEditor)
        assert editor.form.created_by == "someone"


async def test_the_chat_box_takes_the_first_keystrokes(workspace_home: Path) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f5")
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen)
        await pilot.press(*"hello")
        assert app.screen.query_one("#prompt", Input).value == "hello"


async def test_a_saved_conversation_shows_empty_and_stopped_answers_for_what_they_are(
    workspace_home: Path,
) -> None:
    turns = [
        Turn("user", "Hello?"),
        Turn("assistant", "", model="m"),  # the model ended its turn at once
        Turn("user", "Tell me more"),
        Turn("assistant", "Once", interrupted=True, model="m"),
        Turn("user", "And then?"),
        Turn("assistant", "", interrupted=True, model="m"),  # stopped before the first piece
    ]
    save_session(Workspace.open(workspace_home).chats, ChatSession("m.gguf", "", turns))
    app = LabdeskApp(mode="chat")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        sessions = app.screen.query_one("#sessions", OptionList)
        sessions.highlighted = 0
        sessions.action_select()
        await settle(pilot)
        shown = [str(b.render()) for b in app.screen.query(Bubble)]
    assert shown[1].endswith(NO_ANSWER)
    assert shown[3].endswith("Once [stopped]")
    assert shown[5].endswith("[stopped]") and NO_ANSWER not in shown[5]


async def test_a_freeform_skill_shows_no_context_field(workspace_home: Path) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        screen, _ = await open_leaf(pilot)
        titles = [box.title for box in screen.query(FieldBox)]
        assert "context" not in titles and not any("grounded" in t for t in titles)
        await screen.open_leaf(GROUNDED)
        await settle(pilot)
        assert "context" in [box.title for box in screen.query(FieldBox)]


async def test_a_new_leaf_explains_its_problems_in_words(workspace_home: Path) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await pilot.press(*"writing/odes", "enter")
        await settle(pilot)
        editor = app.screen.query_one(LeafEditor)
        messages = [p.message for p in editor.problems]
        assert "seeds 1, 2, 3, 4 and 5 are the same" in messages
        assert "task_description is empty" in messages
        assert not [m for m in messages if "[{" in m or "non-unique" in m or "Value must" in m]
        box = editor.query_one("#box-task_description", FieldBox)
        assert "task_description is empty" in str(box.query_one(".field-problems").render())
