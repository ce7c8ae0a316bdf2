"""A knowledge leaf's documents, as generation will read them: each file and its passages.

`labdesk.documents.documents_for_leaf` fetches the pinned commit (cached) and reads the files
the patterns match; `chunk_documents` cuts them with the recipe's `generate.chunk_tokens`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from labdesk.tui.work import notify_error

if TYPE_CHECKING:
    from labdesk.documents import Chunk, Document
    from labdesk.tui.app import LabdeskApp


class DocumentsScreen(Screen[None]):
    DEFAULT_CSS = """
    DocumentsScreen #files { width: 46; border-right: vkey $panel; }
    DocumentsScreen #chunks { width: 1fr; padding: 0 1; }
    DocumentsScreen .chunk { border: round $panel; padding: 0 1; margin-bottom: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    app: LabdeskApp

    def __init__(self, leaf_path: str) -> None:
        super().__init__()
        self.leaf_path = leaf_path
        self.documents: list[Document] = []
        self.chunks: list[Chunk] = []

    def compose(self) -> ComposeResult:
        yield Label(f"Documents of {escape(self.leaf_path)}", classes="pane-title", id="title")
        with Horizontal():
            yield OptionList(id="files")
            with VerticalScroll(id="chunks"):
                yield Static("fetching the documents at their pinned commit…", id="chunk-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._resolve()

    @work(thread=True, exclusive=True, group="documents")
    def _resolve(self) -> None:
        from labdesk.documents import chunk_documents, documents_for_leaf
        from labdesk.recipes import load_recipe
        from labdesk.taxonomy import load_taxonomy

        try:
            leaf = load_taxonomy(self.app.taxonomy_root).leaf(self.leaf_path)
            documents = documents_for_leaf(leaf, self.app.workspace.cache / "documents")
            max_tokens = load_recipe(self.app.recipe_name).generate.chunk_tokens
            chunks = chunk_documents(documents, max_tokens)
        except Exception as exc:
            notify_error(self.app, exc)
            self.app.call_from_thread(
                self.query_one("#chunk-status", Static).update,
                "[red]could not read the documents[/]",
            )
            return
        self.app.call_from_thread(self._show, documents, chunks, max_tokens)

    def _show(self, documents: list[Document], chunks: list[Chunk], max_tokens: int) -> None:
        self.documents, self.chunks = documents, chunks
        files = self.query_one("#files", OptionList)
        for doc in documents:
            count = sum(1 for c in chunks if c.document == doc.path)
            files.add_option(
                Option(f"{escape(doc.path)} [dim]{doc.format} · {count} passages[/]", id=doc.path)
            )
        commit = documents[0].commit[:12] if documents else "?"
        self.query_one("#chunk-status", Static).update(
            f"{len(documents)} document(s) at {commit}, {len(chunks)} passages of ≤{max_tokens} tokens"
        )
        if documents:
            files.highlighted = 0
            self._show_chunks(documents[0].path)

    @on(OptionList.OptionHighlighted, "#files")
    def _picked(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self._show_chunks(event.option.id)

    def _show_chunks(self, path: str) -> None:
        pane = self.query_one("#chunks", VerticalScroll)
        pane.query(".chunk").remove()
        pane.mount_all(
            Static(
                f"[b]#{c.index + 1}[/b] [dim]{escape(c.heading or '')} · {c.tokens} tokens[/]\n"
                f"{escape(c.text)}",
                classes="chunk",
            )
            for c in self.chunks
            if c.document == path
        )
