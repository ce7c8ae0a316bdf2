"""Long slash paths in short spaces, for both front ends: keep the end that tells them apart.

``compositional_skills/writing/freeform/haiku`` in 20 columns is ``…/freeform/haiku``, not
``compositional_skill…``: every leaf under a folder starts the same way, so the start says least.
"""

from __future__ import annotations


def tail_path(path: str, width: int) -> str:
    """`path` in at most `width` characters: whole trailing parts after ``…/`` where they fit,
    else the last part alone, else the end of the last part after ``…``."""
    if len(path) <= width:
        return path
    parts = path.split("/")
    kept = parts[-1]
    for part in reversed(parts[:-1]):
        if len(part) + 1 + len(kept) + 2 > width:
            break
        kept = f"{part}/{kept}"
    if len(kept) + 2 <= width:
        return f"…/{kept}"
    if len(parts[-1]) <= width:
        return parts[-1]
    return "…" + parts[-1][-(width - 1) :] if width > 1 else "…"
