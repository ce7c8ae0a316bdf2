"""Generation tests run the real llama.cpp engine on a real GGUF (stories260K, a trained tiny
Llama from the shared fixtures) over a copy of the packaged sample taxonomy."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.generate.helpers import stories_path


@pytest.fixture(scope="session")
def stories_gguf() -> Path:
    path = stories_path()
    if not path.is_file():
        pytest.skip(f"real GGUF fixture not found at {path}")
    return path
