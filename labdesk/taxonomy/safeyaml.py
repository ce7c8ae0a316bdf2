"""Read YAML the way upstream does (PyYAML's safe loader), with bounds it lacks.

Upstream calls `yaml.safe_load`: anchors and aliases become shared objects, so a few hundred
bytes of nested aliases (a "billion laughs") turn into a structure that every later walk
(schema validation, hashing) expands to billions of nodes. We compose first, count the nodes the
tree has once aliases are expanded, and refuse it before anything walks it. Files bigger than
`MAX_FILE_BYTES` are refused before parsing (the largest real qna.yaml we know is ~0.6 MB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from labdesk.yamlpath import child_node  # the one walk from a path to a node, shared with locate()

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_NODES = 50_000
"""Expanded node budget: real leaves have a few hundred; 50k keeps schema checks sub-second."""


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


class YamlLimitError(Exception):
    """The document is readable YAML but too large once aliases are expanded (or recursive)."""

    def __init__(self, message: str, line: int, col: int) -> None:
        super().__init__(message)
        self.line = line
        self.col = col


@dataclass(frozen=True)
class Parsed:
    data: Any
    node: yaml.Node | None


def parse(text: str) -> Parsed:
    """Compose and construct one YAML document like `yaml.safe_load`, bounded in size.

    Raises `yaml.YAMLError` for unreadable YAML and `YamlLimitError` for alias bombs and
    recursive aliases. libyaml composes (10x faster than pure Python; the constructor and
    resolver are the same Python code, so the data is identical); when it refuses the text we
    parse again in pure Python, so errors carry upstream's exact message and position. Text with
    a tab goes to pure Python straight away: libyaml accepts tabs in places PyYAML refuses them
    (the indentation of a plain scalar's continuation line), and upstream's verdict is PyYAML's.
    """
    if _FAST_LOADER is not None and "\t" not in text:
        try:
            return _parse(text, _FAST_LOADER)
        except yaml.YAMLError:
            pass
    return _parse(text, yaml.SafeLoader)


def _parse(text: str, loader_class: Any) -> Parsed:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Parsed(None, None)
        _check_size(node)
        return Parsed(loader.construct_document(node), node)
    finally:
        loader.dispose()


def _check_size(root: yaml.Node) -> None:
    """Count nodes with aliases expanded (memoised per shared node, so counting stays cheap)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            mark = node.start_mark
            raise YamlLimitError(
                "recursive alias: a node contains itself", mark.line + 1, mark.column + 1
            )
        total = 1
        if isinstance(node, yaml.SequenceNode | yaml.MappingNode):
            active.add(key)
            children = (
                node.value
                if isinstance(node, yaml.SequenceNode)
                else [part for pair in node.value for part in pair]
            )
            for child in children:
                total += size(child)
                if total > MAX_NODES:
                    mark = node.start_mark
                    raise YamlLimitError(
                        f"document too large once aliases are expanded (over {MAX_NODES:,} nodes)",
                        mark.line + 1,
                        mark.column + 1,
                    )
            active.discard(key)
        sizes[key] = total
        return total

    size(root)


def position(root: yaml.Node | None, parts: Sequence[str | int]) -> tuple[int, int]:
    """1-based (line, col) of the node at `parts` in an already composed tree (as
    `labdesk.yamlpath.locate`, without parsing the text again); the nearest existing parent
    when the path goes missing."""
    if root is None:
        return 1, 1
    node, mark = root, root.start_mark
    for part in parts:
        child = child_node(node, part)
        if child is None:
            break
        node, mark = child
    return mark.line + 1, mark.column + 1


def path_at(root: yaml.Node, line: int, col: int) -> list[str | int]:
    """The path of the deepest node spanning 1-based (line, col): lint findings get a YAML path
    too. A position just past a value (trailing spaces) still counts as that value's."""
    where = (line - 1, col - 1)

    def spans(node: yaml.Node) -> bool:
        start, end = node.start_mark, node.end_mark
        return (start.line, start.column) <= where <= (end.line, end.column)

    parts: list[str | int] = []
    node = root
    while True:
        children: list[tuple[str | int, yaml.Node]] = []
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    return parts
                if spans(key):
                    return [*parts, key.value]
                children.append((key.value, value))
        elif isinstance(node, yaml.SequenceNode):
            children = list(enumerate(node.value))
        found = next(((part, child) for part, child in children if spans(child)), None)
        if found is None:
            return parts
        parts.append(found[0])
        node = found[1]
