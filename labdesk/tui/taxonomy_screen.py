"""The taxonomy screen: every leaf at a glance (kind, seeds, validity) and the leaf editor.

The tree is drawn from a plain file listing at once; the full upstream check of every leaf runs
in a worker and then colours each leaf. Unsaved edits are never dropped without a question:
opening another leaf or quitting asks to save, discard or stay; the tree marks the leaf with
unsaved edits at the start of its label (where a narrow tree never cuts it off); and the open
leaf's file is watched, so a change made on disk reloads the form or, over unsaved edits, asks.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static, Tree
from textual.widgets.tree import TreeNode

from labdesk.errors import LabdeskError
from labdesk.pathtext import tail_path
from labdesk.tui.widgets import ModeBar, Question
from labdesk.tui.work import notify_error

if TYPE_CHECKING:
    from labdesk.taxonomy import Leaf, Taxonomy
    from labdesk.tui.app import LabdeskApp
    from labdesk.tui.leaf_editor import LeafEditor

GROUPS = ("knowledge", "compositional_skills", "foundational_skills")
LEAF_FILE = "qna.yaml"
KIND_LABEL = {"knowledge": "knowledge", "freeform_skill": "freeform", "grounded_skill": "grounded"}
DISK_CHECK_S = 2.0
"""How often the open leaf's file is compared with what the editor read."""


def list_leaf_files(root: Path) -> list[str]:
    """Leaf files relative to the root (a cheap listing, for drawing the tree at once)."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob(LEAF_FILE)
        if not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


class NewLeafDialog(ModalScreen[tuple[str, str] | None]):
    """Asks for a new leaf's kind and folder."""

    DEFAULT_CSS = """
    NewLeafDialog { align: center middle; }
    NewLeafDialog > Vertical {
        width: 72; height: auto; border: thick $accent; background: $surface; padding: 1 2;
    }
    NewLeafDialog Horizontal { height: auto; margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss(None)", "Cancel")]
    AUTO_FOCUS = "#folder"
    KINDS: ClassVar[dict[str, str]] = {
        "knowledge": "knowledge",
        "freeform_skill": "compositional_skills",
        "grounded_skill": "compositional_skills",
    }

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("New leaf", classes="pane-title")
            yield Select(
                [
                    ("Knowledge (facts from documents)", "knowledge"),
                    ("Freeform skill (no context)", "freeform_skill"),
                    ("Grounded skill (answers use a context)", "grounded_skill"),
                ],
                value="freeform_skill",
                allow_blank=False,
                id="kind",
            )
            yield Input(placeholder="folder, e.g. writing/freeform/limericks", id="folder")
            yield Static("", id="where", classes="hint")
            with Horizontal():
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")

    def _path(self) -> str:
        kind = str(self.query_one("#kind", Select).value)
        folder = self.query_one("#folder", Input).value.strip().strip("/")
        top = self.KINDS[kind]
        if folder.startswith(top + "/"):
            folder = folder[len(top) + 1 :]
        return f"{top}/{folder}" if folder else ""

    @on(Input.Changed)
    @on(Select.Changed)
    def _preview(self) -> None:
        path = self._path()
        self.query_one("#where", Static).update(f"{path}/qna.yaml" if path else "")

    @on(Input.Submitted)
    @on(Button.Pressed, "#create")
    def _create(self) -> None:
        if path := self._path():
            self.dismiss((str(self.query_one("#kind", Select).value), path))

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)


class TaxonomyScreen(Screen[None]):
    DEFAULT_CSS = """
    TaxonomyScreen #side {
        width: 34%; min-width: 24; max-width: 64; border-right: vkey $panel;
    }
    TaxonomyScreen #leaves { height: 1fr; }
    TaxonomyScreen #editor-pane { width: 1fr; }
    TaxonomyScreen #empty { padding: 2 4; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+n", "new_leaf", "New leaf"),
        Binding("ctrl+e", "external_editor", "$EDITOR"),
        Binding("ctrl+r", "check_all", "Re-check"),
        Binding("ctrl+o", "documents", "Documents"),
    ]

    app: LabdeskApp

    def __init__(self) -> None:
        super().__init__()
        self.taxonomy: Taxonomy | None = None
        self.editor: LeafEditor | None = None
        self.current: str | None = None
        """The leaf last picked, even one too broken to open in the form (ctrl+e still works)."""
        self._groups: dict[str, TreeNode[str]] = {}
        self._asked_about: str | None = None
        """The disk text already asked about (over unsaved edits): asked once per change."""

    @property
    def root(self) -> Path:
        return self.app.taxonomy_root

    def compose(self) -> ComposeResult:
        yield ModeBar("taxonomy")
        with Horizontal():
            with Vertical(id="side"):
                yield Label("Taxonomy", classes="pane-title")
                yield Tree("taxonomy", id="leaves")
                yield Static("● unsaved ✓ valid ✗ errors ! warnings", classes="hint")
            with Vertical(id="editor-pane"):
                yield Static(
                    "Pick a leaf on the left to edit it, or press ctrl+n for a new one.\n\n"
                    "A leaf is one qna.yaml: knowledge (facts, with documents) or a skill "
                    "(how to do something, from examples).",
                    id="empty",
                )
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.app.taxonomy_screen = self
        self.populate()
        # the full check imports the validators: start it once the first frame is on screen
        self.call_after_refresh(self.action_check_all)
        self.set_interval(DISK_CHECK_S, self.check_disk)

    def on_resize(self) -> None:
        self.relabel()

    def on_screen_resume(self) -> None:
        self.check_disk()

    # the tree ------------------------------------------------------------------------------
    def populate(self, select: str | None = None) -> None:
        tree = self.query_one("#leaves", Tree)
        tree.clear()
        tree.show_root = False
        groups: dict[str, TreeNode[str]] = {}
        for rel in list_leaf_files(self.root):
            top = rel.split("/", 1)[0]
            if top not in groups:
                groups[top] = tree.root.add(f"[b]{top}[/b]", expand=True)
            node = groups[top].add_leaf(self._label(rel), data=rel)
            if rel == select:
                tree.move_cursor(node)
        for top in GROUPS:  # empty groups still show where new leaves go
            if top not in groups:
                groups[top] = tree.root.add(self._group_label(top), expand=True)
        self._groups = groups

    def _group_label(self, top: str) -> str:
        """An empty group says so where the tree is wide enough."""
        width = self.query_one("#leaves", Tree).size.width or 40
        empty = " [dim](empty)[/]" if len(top) + 10 <= width else ""
        return f"[b]{top}[/b]{empty}"

    def _label(self, rel: str, unsaved: list[str] | None = None) -> str:
        """``● ✓ …/freeform/haiku freeform·5``: unsaved mark and verdict first, then the leaf
        by the end of its path (what tells leaves apart), as much as the tree's width allows."""
        folder = rel.split("/", 1)[1].removesuffix(f"/{LEAF_FILE}") if "/" in rel else rel
        mark = "[dim]…[/]"
        detail = ""
        if self.taxonomy is not None:
            file = str(self.root / rel)
            problems = [p for p in self.taxonomy.problems if p.file == file]
            leaf = self._leaf(rel)
            if any(p.severity == "error" for p in problems):
                mark = "[red]✗[/]"
            elif problems:
                mark = "[yellow]![/]"
            else:
                mark = "[green]✓[/]"
            if leaf is not None:
                detail = f"{KIND_LABEL[leaf.kind]}·{len(leaf.seeds)}"
        mark_unsaved = rel in (self.unsaved() if unsaved is None else unsaved)
        unsaved_text = "[b yellow]●[/] " if mark_unsaved else ""
        width = self.query_one("#leaves", Tree).size.width or 40
        room = width - 4 - 2 - len(unsaved_text and "● ")  # the guide, the marks
        if detail and room - len(detail) - 1 >= min(len(folder), 12):
            room -= len(detail) + 1
            detail = f" [dim]{detail}[/]"
        else:
            detail = ""
        return f"{unsaved_text}{mark} {escape(tail_path(folder, max(room, 6)))}{detail}"

    def _leaf(self, rel: str) -> Leaf | None:
        if self.taxonomy is None:
            return None
        folder = rel.removesuffix(f"/{LEAF_FILE}")
        return next((leaf for leaf in self.taxonomy.leaves if leaf.path == folder), None)

    def relabel(self) -> None:
        tree = self.query_one("#leaves", Tree)
        unsaved = self.unsaved()
        for top, group in self._groups.items():
            if not group.children:
                group.set_label(self._group_label(top))
        for node in tree.root.children:
            for leaf_node in node.children:
                if leaf_node.data:
                    leaf_node.set_label(self._label(leaf_node.data, unsaved))

    def _select_in_tree(self, rel: str | None) -> None:
        tree = self.query_one("#leaves", Tree)
        for group in tree.root.children:
            for node in group.children:
                if node.data == rel:
                    tree.move_cursor(node)

    def action_check_all(self) -> None:
        self.check_disk()
        self._check_all()

    @work(thread=True, exclusive=True, group="check-all")
    def _check_all(self) -> None:
        from labdesk.taxonomy import load_taxonomy

        try:
            taxonomy = load_taxonomy(self.root)
        except LabdeskError as exc:
            notify_error(self.app, exc)
            return
        self.app.call_from_thread(self._checked, taxonomy)

    def _checked(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        tree = self.query_one("#leaves", Tree)
        shown = [leaf.data for group in tree.root.children for leaf in group.children]
        if sorted(x for x in shown if x) != list_leaf_files(self.root):  # edited outside
            self.populate(select=self.editor.rel if self.editor else None)
        else:
            self.relabel()

    # unsaved edits -------------------------------------------------------------------------
    def unsaved(self) -> list[str]:
        """Leaves with edits not yet saved (the open one, if it has any)."""
        editor = self.editor
        if editor is None or not editor.is_mounted:
            return []
        return [editor.rel] if editor.dirty else []

    def unsaved_question(self, doing: str) -> Question:
        (rel,) = self.unsaved()
        return Question(
            f"[b]{escape(rel)}[/b] has unsaved edits. Save them before {doing}?",
            [("save", "Save"), ("discard", "Discard them"), ("cancel", "Cancel")],
            focus="save",
        )

    def save_all(self) -> bool:
        """Save every unsaved edit; False (nothing lost, a notification says why) when one
        cannot be saved without a question: its file changed on disk meanwhile."""
        editor = self.editor
        if editor is None or not self.unsaved():
            return True
        if editor.changed_on_disk():
            self.notify(
                f"{editor.rel} changed on disk since it was opened: save it with ctrl+s to "
                "choose between your edits and the file's",
                severity="error",
            )
            return False
        return editor.save()

    def on_leaf_editor_dirty(self, event: LeafEditor.Dirty) -> None:
        self.relabel()

    def on_leaf_editor_saved(self, event: LeafEditor.Saved) -> None:
        self.action_check_all()

    async def on_leaf_editor_reload_requested(self, event: LeafEditor.ReloadRequested) -> None:
        await self.open_leaf(event.editor.rel, ask=False)

    def check_disk(self) -> None:
        """The open leaf's file changed on disk: reload a form without edits; over unsaved
        edits, ask once per change."""
        editor = self.editor
        if editor is None or not editor.is_mounted or not editor.changed_on_disk():
            return
        if not self.unsaved():
            self.run_worker(self.open_leaf(editor.rel, ask=False, focus=False))
            self.notify(f"{editor.rel} changed on disk: reloaded")
            return
        text = editor.read_disk()
        if self._asked_about == text or isinstance(self.app.screen, ModalScreen):
            return
        self._asked_about = text
        question = Question(
            f"[b]{escape(editor.rel)}[/b] changed on disk, and the form has unsaved edits.\n"
            "Reload it from disk (dropping the form's edits), or keep editing? (Saving will "
            "then ask before it overwrites the file.)",
            [("reload", "Reload from disk"), ("keep", "Keep my edits")],
        )

        async def answered(answer: str | None) -> None:
            if answer == "reload":
                await self.open_leaf(editor.rel, ask=False)

        self.app.push_screen(question, answered)

    # the editor ----------------------------------------------------------------------------
    @on(Tree.NodeSelected, "#leaves")
    async def _selected(self, event: Tree.NodeSelected[str]) -> None:
        if event.node.data:
            await self.open_leaf(event.node.data)

    async def open_leaf(self, rel: str, *, ask: bool = True, focus: bool = False) -> None:
        """Open `rel` in the form; with unsaved edits in another leaf, ask first (save /
        discard / cancel), unless `ask` is False (the edits were dealt with)."""
        if ask and self.editor is not None and self.unsaved() and rel != self.editor.rel:

            async def answered(answer: str | None) -> None:
                if answer == "discard" or (answer == "save" and self.save_all()):
                    await self.open_leaf(rel, ask=False)
                else:
                    self._select_in_tree(self.current)

            self.app.push_screen(self.unsaved_question("opening another leaf"), answered)
            return
        await self._open(rel, focus=focus)

    async def _open(self, rel: str, *, focus: bool) -> None:
        from labdesk.tui.leaf_editor import LeafEditor
        from labdesk.tui.qna_file import QnaFile

        self.current = rel
        file = self.root / rel
        knowledge = rel.startswith("knowledge/")
        try:
            text = file.read_text(encoding="utf-8")
            qna = QnaFile.parse(text, knowledge=knowledge, where=str(file))
        except LabdeskError as exc:
            notify_error(self.app, exc)
            return
        except (OSError, UnicodeDecodeError) as exc:
            notify_error(self.app, exc)
            return
        editor = LeafEditor(file, rel, qna, text)
        pane = self.query_one("#editor-pane")
        await pane.remove_children()
        await pane.mount(editor)
        self.editor = editor
        self._asked_about = None
        self.relabel()
        if focus:
            editor.focus_first()

    # commands ------------------------------------------------------------------------------
    def action_save(self) -> None:
        if self.editor is None or not self.editor.is_attached:
            self.notify("pick a leaf first", severity="warning")
            return
        self.editor.action_save()

    def action_new_leaf(self) -> None:
        self.app.push_screen(NewLeafDialog(), self._create_leaf)

    async def _create_leaf(self, answer: tuple[str, str] | None) -> None:
        """A new leaf from the core's skeleton (its blanks fail validation until filled); the
        open leaf's unsaved edits are asked about first."""
        if answer is None:
            return
        if not self.unsaved():
            await self._create(*answer)
            return

        async def answered(choice: str | None) -> None:
            if choice == "discard" or (choice == "save" and self.save_all()):
                await self._create(*answer)

        self.app.push_screen(self.unsaved_question("creating a new leaf"), answered)

    async def _create(self, kind: str, folder: str) -> None:
        from labdesk.taxonomy import new_leaf

        try:
            file = new_leaf(kind, folder, self.root)
        except LabdeskError as exc:
            notify_error(self.app, exc)
            return
        rel = file.relative_to(self.root).as_posix()
        self.populate(select=rel)
        await self._open(rel, focus=True)  # typing goes straight into the first field
        self.action_check_all()

    async def action_external_editor(self) -> None:
        """Escape hatch: edit the raw file in $EDITOR, then reload it."""
        rel = self.current
        if rel is None:
            self.notify("pick a leaf first", severity="warning")
            return
        editor = self.editor
        unsaved = editor is not None and editor.rel == rel and bool(self.unsaved())
        if unsaved and editor is not None and (editor.changed_on_disk() or not editor.save()):
            self.notify("save or discard the form's edits first (ctrl+s)", severity="warning")
            return
        command = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
        try:
            with self.app.suspend():
                subprocess.run([*command, str(self.root / rel)], check=False)
        except Exception as exc:  # no terminal to hand over (headless), editor missing, ...
            notify_error(self.app, exc)
            return
        await self.open_leaf(rel, ask=False)
        self.action_check_all()

    def action_documents(self) -> None:
        if self.editor is None or not self.editor.rel.startswith("knowledge/"):
            self.notify("documents belong to knowledge leaves: pick one first", severity="warning")
            return
        from labdesk.tui.documents_screen import DocumentsScreen

        self.app.push_screen(DocumentsScreen(self.editor.rel.removesuffix(f"/{LEAF_FILE}")))
