"""A real llama.cpp engine on the real stories260K GGUF, formatted with the LAB chat template."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from labdesk.chat import LAB_CHAT_TEMPLATE
from labdesk.recipes import EngineSettings

if TYPE_CHECKING:
    from labdesk.models.engine import Engine


@pytest.fixture(scope="session")
def stories_engine() -> Iterator[Engine]:
    from labdesk.models.engine import Engine
    from tests.conftest import SHARED_FIXTURES

    gguf = SHARED_FIXTURES / "stories260K" / "stories260K.gguf"
    if not gguf.is_file():
        pytest.skip(f"stories260K fixture not found at {gguf}")
    settings = EngineSettings(n_ctx=256, parallel=1, n_threads=2, chat_template=LAB_CHAT_TEMPLATE)
    engine = Engine.load(gguf, settings)
    yield engine
    engine.close()
