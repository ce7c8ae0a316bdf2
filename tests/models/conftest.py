"""Models under test: the real stories260K GGUF and a random-weight Llama with its tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.models.engine import Engine
from labdesk.models.synthetic import write_random_llama
from labdesk.recipes import EngineSettings

STORIES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "stories260K"


@pytest.fixture(scope="session")
def stories_gguf() -> Path:
    path = STORIES / "stories260K.gguf"
    if not path.is_file():
        pytest.skip(f"real-world fixture not found at {path}")
    return path


@pytest.fixture(scope="session")
def random_gguf(stories_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_random_llama(
        tmp_path_factory.mktemp("models") / "random.gguf", tokenizer_from=stories_gguf
    )


def load(path: Path, **settings: object) -> Engine:
    """An engine on `path` with a small context and one thread.

    One thread because on a busy 2-core machine ggml's spinning worker threads slow down
    many times over whenever another process holds a core.
    """
    base: dict[str, object] = {"n_ctx": 512, "parallel": 4, "n_threads": 1}
    return Engine.load(path, EngineSettings.model_validate(base | settings))
