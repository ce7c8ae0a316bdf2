"""Fixtures for the app's tests: a workspace with the tiny models built once per session, and a
recipe small enough that generation, training and export finish in seconds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from labdesk.resources import data_dir

SKIPPED_LEAF = "compositional_skills/writing/freeform/haiku"


@pytest.fixture(scope="session")
def builtin_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny student, built once (a real HF folder + GGUF); the teacher is SmolLM2."""
    from labdesk.tinymodels import ensure_builtin

    models = tmp_path_factory.mktemp("tiny-models")
    ensure_builtin("tiny-student", models)
    return models / "builtin"


@pytest.fixture
def home(workspace_home: Path, builtin_models: Path, link_smollm2: Callable[[Path], None]) -> Path:
    """A fresh workspace (LABDESK_HOME) that finds the tiny models already built and the tiny
    recipe's SmolLM2 teacher already pulled."""
    (workspace_home / "models").mkdir(parents=True)
    (workspace_home / "models" / "builtin").symlink_to(builtin_models, target_is_directory=True)
    link_smollm2(workspace_home)
    return workspace_home


@pytest.fixture
def fast_recipe(tmp_path: Path) -> Path:
    """The tiny recipe, cut down: two samples per leaf, one round, small skill phases."""
    recipe = yaml.safe_load((data_dir("recipes") / "tiny.yaml").read_text(encoding="utf-8"))
    recipe["name"] = "fast"
    recipe.setdefault("generate", {}).update(samples_per_leaf=2, max_rounds=1, overgenerate=1.0)
    recipe.setdefault("mix", {}).update(skills_per_leaf=4)
    path = tmp_path / "fast.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.fixture
def skipping_recipe(fast_recipe: Path) -> Path:
    """The fast recipe, leaving out the haiku leaf (`skip_leaves`)."""
    recipe = yaml.safe_load(fast_recipe.read_text(encoding="utf-8"))
    recipe["skip_leaves"] = [SKIPPED_LEAF]
    fast_recipe.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return fast_recipe


@pytest.fixture
def anyio_backend() -> str:
    """Pilot tests are coroutines run by anyio's pytest plugin, on asyncio (Textual's loop)."""
    return "asyncio"
