"""Where the packaged data lives: the sample taxonomy, the recipes and prompt templates.

In a wheel they sit in ``labdesk/_data``; in a source checkout at the repository's top level.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The packaged folder `name` ("taxonomy" or "recipes")."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"labdesk's packaged '{name}' folder is missing (broken install?)")


def package_file(*parts: str) -> Path:
    """A file shipped inside the package itself (prompt templates, bundled text)."""
    return _PACKAGE.joinpath(*parts)
