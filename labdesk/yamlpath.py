"""Find where a YAML path (e.g. ``seed_examples[2].answer``) sits in the source text.

Upstream validators report line 1 for schema errors; we point at the node itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml


def format_path(parts: Sequence[str | int]) -> str:
    """``["seed_examples", 2, "answer"]`` → ``seed_examples[2].answer``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def locate(text: str, parts: Sequence[str | int]) -> tuple[int, int]:
    """1-based (line, column) of the deepest node of `parts` that exists in `text`.

    Falls back to the nearest existing parent (a missing key is reported at its mapping), and to
    (1, 1) when the text does not parse.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return 1, 1
    if node is None:
        return 1, 1
    mark = node.start_mark
    for part in parts:
        child = child_node(node, part)
        if child is None:
            break
        node, mark = child
    return mark.line + 1, mark.column + 1


def child_node(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Mark] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                # point at the value unless it is empty, then at its key
                return value, value.start_mark if value.value not in ("", None) else key.start_mark
    elif (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and 0 <= part < len(node.value)
    ):
        item = node.value[part]
        return item, item.start_mark
    return None
