"""A JSON Lines viewer that stays fast on files of any size (the way toolong reads logs).

`LineIndex` finds line starts lazily, block by block, so the first page needs only the first
block of the file; the rest is indexed in a worker while the user reads. `JsonlView` draws only
the rows on screen (Textual's line API) and parses only the records it draws. Samples can be
dropped by hand: the file is rewritten atomically and each dropped record is kept, with why, in
``<name>.dropped.jsonl`` beside it.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from rich.segment import Segment
from textual import work
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from labdesk.errors import LabdeskError
from labdesk.fileio import append_jsonl, atomic_writer
from labdesk.tui.work import notify_error

BLOCK = 1 << 20
"""Bytes indexed per step: the first page never waits for more than one block."""


class LineIndex:
    """Byte offsets of the complete lines of a file, found on demand and as the file grows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._starts = array("q", [0])
        """Start of every complete line, plus the start of the (possibly torn) remainder."""
        self._scanned = 0
        self._lock = threading.Lock()
        self._file = path.open("rb")
        self._map: mmap.mmap | None = None

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        self._file.close()

    def __len__(self) -> int:
        return len(self._starts) - 1

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def complete(self) -> bool:
        return self._scanned >= self.size

    def scan(self, min_lines: int | None = None, max_bytes: int | None = None) -> bool:
        """Index forward until `min_lines` are known, `max_bytes` were read, or the end.

        Returns True when new lines were found. Safe to call from a worker thread.
        """
        found = False
        with self._lock:
            budget = max_bytes if max_bytes is not None else 1 << 62
            size = self.size
            while self._scanned < size and budget > 0:
                if min_lines is not None and len(self) >= min_lines:
                    break
                self._file.seek(self._scanned)
                block = self._file.read(min(BLOCK, size - self._scanned))
                if not block:
                    break
                base = self._scanned
                at = block.find(b"\n")
                while at != -1:
                    self._starts.append(base + at + 1)
                    found = True
                    at = block.find(b"\n", at + 1)
                self._scanned += len(block)
                budget -= len(block)
            if found and self._map is not None:
                self._map.close()
                self._map = None
        return found

    def line(self, index: int) -> bytes:
        start, end = self._starts[index], self._starts[index + 1]
        if self._map is None:
            self._map = mmap.mmap(self._file.fileno(), end, access=mmap.ACCESS_READ)
        if end > len(self._map):
            self._map.close()
            self._map = mmap.mmap(self._file.fileno(), end, access=mmap.ACCESS_READ)
        return self._map[start : end - 1]


def _flat(text: Any, width: int = 400) -> str:
    return " ".join(str(text or "").split())[:width]


def summarize(record: Any) -> tuple[str, str]:
    """One row for a sample: (what it is, what it says), rejected ones with their reason."""
    if not isinstance(record, dict):
        return "?", _flat(json.dumps(record))
    meta = record.get("metadata") or {}
    messages = record.get("messages") or []
    by_role = {m.get("role"): m.get("content") for m in messages if isinstance(m, dict)}
    kind = str(meta.get("type") or "")
    text = f"Q: {_flat(by_role.get('user'))}  A: {_flat(by_role.get('assistant'))}"
    if meta.get("reason"):
        text = f"✗ {meta.get('step', '')}: {_flat(meta['reason'], 120)} │ {text}"
    return kind, text


class JsonlView(ScrollView, can_focus=True):
    """Scrollable rows of a JSONL file; enter opens a record, x marks it to drop, w writes."""

    DEFAULT_CSS = """
    JsonlView { height: 1fr; background: $surface; }
    JsonlView > .jsonl--cursor { background: $accent 40%; }
    JsonlView > .jsonl--dropped { color: $error; text-style: strike; }
    JsonlView > .jsonl--number { color: $text-muted; }
    JsonlView > .jsonl--kind { color: $secondary; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "jsonl--cursor",
        "jsonl--dropped",
        "jsonl--number",
        "jsonl--kind",
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "open", "Open"),
        Binding("x", "toggle_drop", "Drop/keep"),
        Binding("w", "write", "Write drops"),
    ]

    cursor: reactive[int] = reactive(0)

    class Opened(Message):
        def __init__(self, view: JsonlView, index: int, record: Any) -> None:
            super().__init__()
            self.view = view
            self.index = index
            self.record = record

    class Rewritten(Message):
        def __init__(self, view: JsonlView, dropped: int) -> None:
            super().__init__()
            self.view = view
            self.dropped = dropped

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.index: LineIndex | None = None
        self.dropped: set[int] = set()
        self.writable = True
        self.write_guard: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext
        """Held while the file is rewritten: the generate screen holds the run's lock, so no
        `labdesk generate` appends to a file being replaced."""
        """False while something else appends to the file (a rewrite would lose its lines)."""
        self._rows: OrderedDict[int, tuple[str, str]] = OrderedDict()

    # loading -------------------------------------------------------------------------------
    def open(self, path: Path) -> None:
        """Show `path`: the first page at once, the rest indexed in the background."""
        self.close()
        if not path.is_file():
            self.virtual_size = Size(0, 0)
            self.refresh()
            return
        self.index = LineIndex(path)
        self.index.scan(min_lines=max(self.size.height, 50) * 2, max_bytes=BLOCK)
        self._resize()
        self.cursor = 0
        self.scroll_to(0, 0, animate=False)
        self._index_rest(self.index)

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
        self.index = None
        self.dropped.clear()
        self._rows.clear()

    def reload(self) -> None:
        """Pick up lines appended since (a generation in progress writes as it goes)."""
        if self.index is None:
            return
        if self.index.scan():
            self._resize()

    @work(thread=True, exclusive=True, group="jsonl-index")
    def _index_rest(self, index: LineIndex) -> None:
        while not index.complete and index is self.index:
            if index.scan(max_bytes=8 * BLOCK):
                self.app.call_from_thread(self._resize)

    def _resize(self) -> None:
        rows = len(self.index) if self.index else 0
        self.virtual_size = Size(self.size.width, rows)
        self.refresh()

    @property
    def count(self) -> int:
        return len(self.index) if self.index else 0

    def record(self, row: int) -> Any:
        assert self.index is not None
        raw = self.index.line(row)
        try:
            return json.loads(raw)
        except ValueError:
            return {"unreadable line": raw[:2000].decode("utf-8", "replace")}

    def _row(self, row: int) -> tuple[str, str]:
        if row in self._rows:
            self._rows.move_to_end(row)
            return self._rows[row]
        summary = summarize(self.record(row))
        self._rows[row] = summary
        if len(self._rows) > 2000:
            self._rows.popitem(last=False)
        return summary

    # drawing -------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        row = self.scroll_offset.y + y
        width = self.size.width
        if self.index is None or row >= len(self.index):
            return Strip.blank(width, self.rich_style)
        kind, text = self._row(row)
        base = self.rich_style
        if row in self.dropped:
            base += self.get_component_rich_style("jsonl--dropped")
        if row == self.cursor:
            base += self.get_component_rich_style("jsonl--cursor")
        number = self.get_component_rich_style("jsonl--number")
        kind_style = self.get_component_rich_style("jsonl--kind")
        segments = [
            Segment(f"{row + 1:>7} ", base + number),
            Segment(f"{kind[:10]:<10} ", base + kind_style),
            Segment(text, base),
        ]
        return Strip(segments).adjust_cell_length(width, base)

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh()
        top = self.scroll_offset.y
        height = max(self.size.height, 1)
        if new < top:
            self.scroll_to(y=new, animate=False)
        elif new >= top + height:
            self.scroll_to(y=new - height + 1, animate=False)

    # keys ----------------------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        if self.count:
            self.cursor = max(0, min(self.count - 1, self.cursor + delta))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(self.size.height - 1, 1))

    def action_jump(self, row: int) -> None:
        if self.count:
            self.cursor = row if row >= 0 else self.count - 1

    def on_click(self, event: Any) -> None:
        row = self.scroll_offset.y + event.y
        if 0 <= row < self.count:
            self.cursor = row

    def action_open(self) -> None:
        if self.count:
            self.post_message(self.Opened(self, self.cursor, self.record(self.cursor)))

    def action_toggle_drop(self) -> None:
        if self.count:
            self.dropped.symmetric_difference_update({self.cursor})
            self.refresh()
            self.action_move(1)

    def _rewrite(self, index: LineIndex, path: Path) -> None:
        # the dropped records are kept first: a crash in between loses nothing
        dropped_file = path.with_name(path.name.removesuffix(".jsonl") + ".dropped.jsonl")
        for row in sorted(self.dropped):
            append_jsonl(dropped_file, {"dropped_by": "hand", "record": self.record(row)})
        with atomic_writer(path, "wb", encoding=None) as out:
            for row in range(len(index)):
                if row not in self.dropped:
                    out.write(index.line(row) + b"\n")

    def action_write(self) -> None:
        """Rewrite the file without the dropped records; keep those in `.dropped.jsonl`."""
        if self.index is None or not self.dropped:
            self.notify("nothing marked: press x on a sample to drop it", severity="warning")
            return
        if not self.writable:
            self.notify(
                "generation is writing this file: drop samples once it stops", severity="warning"
            )
            return
        index, path = self.index, self.index.path
        try:
            with self.write_guard():
                index.scan()  # every line written before the guard was taken
                self._rewrite(index, path)
        except (LabdeskError, OSError) as exc:
            notify_error(self.app, exc)
            return
        count = len(self.dropped)
        self.open(path)
        self.post_message(self.Rewritten(self, count))
