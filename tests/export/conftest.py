"""Tiny models built once per session, and the real stories260K fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.tinymodels import BuiltinModel, build_tiny_model


@pytest.fixture(scope="session")
def tiny_bpe(tmp_path_factory: pytest.TempPathFactory) -> BuiltinModel:
    return build_tiny_model(tmp_path_factory.mktemp("bpe") / "hf", tokenizer="bpe", seed=3)


@pytest.fixture(scope="session")
def tiny_spm(tmp_path_factory: pytest.TempPathFactory) -> BuiltinModel:
    return build_tiny_model(tmp_path_factory.mktemp("spm") / "hf", tokenizer="spm", seed=4)


@pytest.fixture
def stories_hf(shared_fixtures: Path) -> Path:
    return shared_fixtures / "stories260K" / "hf"
