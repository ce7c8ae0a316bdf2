"""Shared test fixtures: a temporary workspace and the real-world data in ../shared/fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

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
