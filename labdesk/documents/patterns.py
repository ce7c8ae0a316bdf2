"""Glob patterns over the paths of a git tree, confined to the repository.

Matching follows `glob.glob` as upstream InstructLab applies it to a checkout: `*`, `?` and
`[...]` stay within one path segment, `**` spans any number of segments, and a wildcard does not
match a name starting with a dot unless the pattern segment does too.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import PurePosixPath, PureWindowsPath

from labdesk.errors import DocumentError


def check_pattern(pattern: str) -> tuple[str, ...]:
    """The pattern's segments; a pattern that could name a path outside the repo is refused."""
    text = pattern.strip()
    hint = "patterns are relative to the repository root, e.g. `*.md` or `docs/guide.md`"
    if not text:
        raise DocumentError("a document pattern is empty", hint=hint)
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).anchor or text.startswith("~"):
        raise DocumentError(
            f"document pattern '{pattern}' is an absolute path; it must stay inside the repository",
            hint=hint,
        )
    segments = tuple(s for s in text.replace("\\", "/").split("/") if s not in ("", "."))
    if ".." in segments:
        raise DocumentError(
            f"document pattern '{pattern}' uses '..'; it must stay inside the repository",
            hint=hint,
        )
    if not segments:
        raise DocumentError(f"document pattern '{pattern}' names no file", hint=hint)
    return segments


def match_paths(segments: tuple[str, ...], paths: Iterable[str]) -> list[str]:
    """The paths (sorted) that the pattern's segments match."""
    return sorted(p for p in paths if _match(segments, tuple(p.split("/"))))


def _match(pattern: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        # zero or more whole segments, none of them hidden (as glob's recursive mode)
        for skip in range(len(parts) + 1):
            if _match(rest, parts[skip:]):
                return True
            if skip < len(parts) and parts[skip].startswith("."):
                return False
        return False
    return bool(parts) and _match_segment(head, parts[0]) and _match(rest, parts[1:])


def _match_segment(pattern: str, name: str) -> bool:
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatchcase(name, pattern)
