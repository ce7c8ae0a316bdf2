"""A user's install: the wheel into a fresh venv with no extras, then `labdesk export gguf`.

Unlike `test_wheel.py`, nothing is borrowed from the test environment: pip resolves every
dependency the package declares (from the machine's wheel cache, pinned by
`constraints/cpu.txt`), so an import the package forgot to declare fails here, as it would for a
user. The stories260K model has a SentencePiece tokenizer, whose model proto needs `protobuf`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from labdesk.models.ggufinfo import read_gguf

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_export_gguf_works_on_a_clean_install(shared_fixtures: Path, tmp_path: Path) -> None:
    model = shared_fixtures / "stories260K" / "hf"
    assert (model / "tokenizer.model").is_file()
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), REPO],
        check=True,
        capture_output=True,
    )
    wheel = next(dist.glob("labdesk-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "-c", REPO / "constraints" / "cpu.txt", wheel],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    # only what the package declares: no test or dev extras came along
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    )
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "pytest" not in names and "protobuf" in names

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["LABDESK_HOME"] = str(tmp_path / "home")
    out = tmp_path / "stories-f32.gguf"
    result = subprocess.run(
        [env_dir / "bin" / "labdesk", "export", "gguf", model, "--outtype", "f32", "-o", out],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    info = read_gguf(out)
    assert info.architecture == "llama"
