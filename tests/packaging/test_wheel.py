"""Build the wheel and sdist, install the wheel into a fresh venv, run the packaged CLI.

The fresh venv gets labdesk itself only from the wheel; its dependencies are borrowed from the
test environment through a .pth path (installing torch & co. again would take minutes and the
network). `.pth` files inside that borrowed folder are not processed, so the editable install of
the checkout cannot leak in — the test asserts that labdesk runs from the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out


def test_sdist_and_wheel_carry_package_data(dist: Path) -> None:
    wheel = next(dist.glob("labdesk-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "labdesk/_data/recipes/demo.yaml" in names
    assert any(n.startswith("labdesk/_data/taxonomy/") and n.endswith("/qna.yaml") for n in names)
    sdist = next(dist.glob("labdesk-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        members = archive.getnames()
    assert any(m.endswith("/recipes/demo.yaml") for m in members)
    assert any(m.endswith("/constraints/cpu.txt") for m in members)


def test_wheel_installs_and_runs(dist: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    wheel = next(dist.glob("labdesk-*.whl"))
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LABDESK_HOME"] = str(tmp_path / "home")
    labdesk = env_dir / "bin" / "labdesk"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [labdesk, *args], capture_output=True, text=True, env=env, cwd=tmp_path
        )

    where = subprocess.check_output(
        [python, "-c", "import labdesk; print(labdesk.__file__)"], text=True, env=env, cwd=tmp_path
    )
    assert where.startswith(str(env_dir)), where

    help_ = run("--help")
    assert help_.returncode == 0 and "taxonomy" in help_.stdout
    check = run("taxonomy", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    # the packaged sample taxonomy was copied into the fresh workspace and checked
    assert list((tmp_path / "home" / "taxonomy").rglob("qna.yaml"))
