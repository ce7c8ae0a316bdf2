"""Cut documents into passages of at most `max_tokens` tokens, keeping headings with their text.

A Markdown document is read as sections (one per ATX heading, code fences respected). Whole
sections are packed together while they fit; a section too big for one passage is split at
paragraphs, then lines, sentences, words and, last, characters. Every passage starts with the
heading lines of the path it sits under that are not already in its own text (a split section
repeats its heading), so a passage read alone still says what it is about. The passages' spans
(`start`, `end`) tile the document exactly: no text is lost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

from labdesk.errors import ConfigError

if TYPE_CHECKING:
    from labdesk.documents.resolve import Document

HEADING_SEPARATOR = " > "

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(\S.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Where each split level may cut: after a blank-line run, a line end, a sentence's end, a space.
_CUTS = (
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n"),
    re.compile(r"[.!?][\"')\]]*\s+"),
    re.compile(r"\s+"),
)


@dataclass(frozen=True)
class Chunk:
    document: str
    """`Document.path` of the document the passage comes from."""
    index: int
    """Position of the passage within its document, from 0."""
    heading: str | None
    """The heading path the passage starts under (``Title > Section``), None before any heading."""
    text: str
    """What generation reads: the heading lines not already in the passage, then the passage."""
    tokens: int
    """Tokens of `text` by the counter used (never more than `max_tokens`)."""
    start: int = 0
    end: int = 0
    """The span of the document's text this passage covers (repeated headings excluded)."""


@dataclass(frozen=True)
class _Section:
    start: int
    body: int
    """Where the text after the section's own heading line begins (== start when none)."""
    end: int
    path: tuple[str, ...]
    lines: tuple[str, ...]
    """The heading lines of `path`, as written, top level first."""


def word_count(text: str) -> int:
    return len(text.split())


def chunk_documents(
    docs: Sequence[Document],
    max_tokens: int,
    count_tokens: Callable[[str], int] | None = None,
) -> list[Chunk]:
    """Every document's passages, in document order. Deterministic for the same input.

    `count_tokens` should be the tokenizer of the model that will read the passages; without one,
    whitespace-separated words are counted.
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be at least 1, not {max_tokens}")
    count = count_tokens or word_count
    chunks: list[Chunk] = []
    for doc in docs:
        sections = markdown_sections(doc.text) if doc.format == "markdown" else None
        packer = _Packer(doc.text, max_tokens, count)
        packer.place_sections(sections or [_Section(0, 0, len(doc.text), (), ())])
        chunks += [
            Chunk(doc.path, i, heading, text, tokens, start, end)
            for i, (heading, text, tokens, start, end) in enumerate(packer.finish())
        ]
    return chunks


def markdown_sections(text: str) -> list[_Section]:
    """The document split at its ATX headings (`#` … `######`), outside fenced code."""
    sections: list[_Section] = []
    stack: list[tuple[int, str, str]] = []  # (level, title, line) of the open headings
    start, body, fence = 0, 0, ""
    offset = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\n")
        if fence:
            if stripped.strip().startswith(fence):
                fence = ""
        elif opening := _FENCE.match(stripped):
            fence = opening.group(1)
        elif heading := _ATX.match(stripped):
            if offset > start:
                sections.append(_section(start, body, offset, stack))
            level = len(heading.group(1))
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, heading.group(2).strip(), stripped.strip()))
            start, body = offset, offset + len(line)
        offset += len(line)
    sections.append(_section(start, body, len(text), stack))
    return sections


def _section(start: int, body: int, end: int, stack: list[tuple[int, str, str]]) -> _Section:
    return _Section(
        start, body, end, tuple(title for _, title, _ in stack), tuple(ln for _, _, ln in stack)
    )


class _Packer:
    """Greedy packing of contiguous spans into passages, measured on the text as rendered."""

    def __init__(self, text: str, max_tokens: int, count: Callable[[str], int]) -> None:
        self.text = text
        self.max_tokens = max_tokens
        self.count = count
        self.done: list[tuple[str | None, str, int, int, int]] = []
        self.start = self.end = 0
        self.prefix = ""
        self.heading: str | None = None
        self.open = False
        self.has_body = False

    def place_sections(self, sections: Sequence[_Section]) -> None:
        ends = [section.end for section in sections]
        i = 0
        while i < len(sections):
            if taken := self._take(ends, i):
                self._extend(ends[i + taken - 1])
                i += taken
            else:
                self._place_section(sections[i])
                i += 1

    def _place_section(self, section: _Section) -> None:
        """A section that does not fit in the open passage (or no passage is open)."""
        if self.open and self.has_body:
            self._flush()
        if not self.open:
            own_heading_inside = section.body > section.start
            self._open(section, section.lines[:-1] if own_heading_inside else section.lines)
        if self._fits(section.end):
            self._extend(section.end)
            return
        # Too big for one passage: the heading line stays glued to the text that follows it
        # (unless the budget cannot even hold the heading: then it is split like text).
        glued = section.body if self._fits(section.body) else section.start
        self.end = glued
        self._place_run(section, _pieces(self.text, glued, section.end, 0), 0)

    def _place_run(self, section: _Section, pieces: list[tuple[int, int]], level: int) -> None:
        ends = [b for _, b in pieces]
        i = 0
        while i < len(pieces):
            if taken := self._take(ends, i):
                self._extend(ends[i + taken - 1])
                i += taken
            else:
                self._place_piece(section, *pieces[i], level)
                i += 1

    def _place_piece(self, section: _Section, a: int, b: int, level: int) -> None:
        """A piece that does not fit in the open passage (or no passage is open)."""
        if self.open and self.has_body:
            self._flush()
        if not self.open:
            self._open(section, section.lines)  # mid-section: repeat its own heading too
        if self._fits(b):
            self._extend(b)
        elif level < len(_CUTS):
            self._place_run(section, _pieces(self.text, a, b, level + 1), level + 1)
        elif self.end > self.start and not self.has_body:
            self._flush()  # only heading lines fit: let them stand alone rather than fail
            self._place_piece(section, a, b, level)
        else:
            raise ConfigError(
                f"max_tokens={self.max_tokens} is too small to hold even one character "
                "of a document",
                hint="raise the passage size (generate.chunk_tokens in the recipe)",
            )

    def _take(self, ends: Sequence[int], i: int) -> int:
        """How many spans from `i` (given by their ends) fit in the open passage together.

        Galloping then bisecting costs O(log k) token counts for a passage of k pieces instead
        of k counts of an ever longer text. Only an end that was counted is ever taken, so the
        budget holds whatever the tokenizer does.
        """
        if not self.open:
            return 0
        fit, step, left = 0, 1, len(ends) - i
        while fit + step <= left and self._fits(ends[i + fit + step - 1]):
            fit += step
            step *= 2
        low, high = fit, min(fit + step, left + 1)  # `high` pieces are known not to fit
        while high - low > 1:
            mid = (low + high) // 2
            if self._fits(ends[i + mid - 1]):
                low = mid
            else:
                high = mid
        return low

    def _open(self, section: _Section, lines: tuple[str, ...]) -> None:
        self.start = self.end
        self.heading = HEADING_SEPARATOR.join(section.path) or None
        # Headings are context, not content: never let them take more than half a passage.
        for candidate in (lines, lines[-1:], ()):
            self.prefix = "".join(f"{line}\n\n" for line in candidate)
            if self.count(self.prefix) <= self.max_tokens // 2:
                break
        self.open = True
        self.has_body = False

    def _render(self, end: int) -> str:
        return self.prefix + self.text[self.start : end].lstrip("\n").rstrip()

    def _fits(self, end: int) -> bool:
        return self.count(self._render(end)) <= self.max_tokens

    def _extend(self, end: int) -> None:
        self.has_body = self.has_body or bool(_body_text(self.text[self.end : end]))
        self.end = end

    def _flush(self) -> None:
        rendered = self._render(self.end)
        self.done.append((self.heading, rendered, self.count(rendered), self.start, self.end))
        self.open = False

    def finish(self) -> list[tuple[str | None, str, int, int, int]]:
        if self.open:
            if self.text[self.start : self.end].strip():
                self._flush()
            elif self.done:  # trailing blank lines belong to the last passage (text unchanged)
                heading, rendered, tokens, start, _ = self.done[-1]
                self.done[-1] = (heading, rendered, tokens, start, self.end)
        return self.done


def _body_text(span: str) -> str:
    """The span without heading lines and whitespace: is there anything to learn from?"""
    return "".join(line for line in span.splitlines() if not _ATX.match(line)).strip()


def _pieces(text: str, start: int, end: int, level: int) -> list[tuple[int, int]]:
    """Contiguous spans tiling [start, end), cut at the given level (the last: characters)."""
    if level >= len(_CUTS):
        return [(i, i + 1) for i in range(start, end)]
    cuts = [m.end() for m in _CUTS[level].finditer(text, start, end) if start < m.end() < end]
    bounds = [start, *cuts, end]
    return [(a, b) for a, b in pairwise(bounds) if b > a]
