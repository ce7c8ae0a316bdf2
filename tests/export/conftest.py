"""Tiny models built once per session, and the real stories260K fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.tinymodels import BuiltinModel, TinySpec, build_tiny_model

# The families the real recipes' models come from, at a weight scale where every part of the
# conversion shows in the logits (see TinySpec.init_std). Mistral's heads are wider than
# hidden / heads, as in Mistral Nemo.
FAMILY_SPECS = {
    "qwen2": TinySpec(family="qwen2", init_std=0.2, seed=7),
    "mistral": TinySpec(family="mistral", head_dim=32, init_std=0.2, seed=8),
    "granite": TinySpec(family="granite", init_std=0.2, seed=9),
}


@pytest.fixture(scope="session")
def tiny_bpe(tmp_path_factory: pytest.TempPathFactory) -> BuiltinModel:
    return build_tiny_model(tmp_path_factory.mktemp("bpe") / "hf", tokenizer="bpe", seed=3)


@pytest.fixture(scope="session")
def tiny_spm(tmp_path_factory: pytest.TempPathFactory) -> BuiltinModel:
    return build_tiny_model(tmp_path_factory.mktemp("spm") / "hf", tokenizer="spm", seed=4)


@pytest.fixture
def stories_hf(shared_fixtures: Path) -> Path:
    return shared_fixtures / "stories260K" / "hf"


@pytest.fixture(scope="session", params=list(FAMILY_SPECS))
def family_model(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> BuiltinModel:
    """A tiny Qwen2, Mistral or Granite (each test using it runs once per family)."""
    folder = tmp_path_factory.mktemp(request.param)
    return build_tiny_model(folder / "hf", FAMILY_SPECS[request.param])
