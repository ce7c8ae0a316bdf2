"""Generation tests run the real llama.cpp engine on a real instruct model (SmolLM2-135M-
Instruct, pulled through pip as the demo recipe names it) over a copy of the sample taxonomy."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def teacher_gguf(smollm2: Path) -> Path:
    return smollm2
