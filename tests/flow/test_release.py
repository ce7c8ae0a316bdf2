"""Generation gives the teacher's memory back: resident memory at the start of mix is back near
where it was when generate started, measured on a real process running the tiny recipe's teacher
(SmolLM2-135M-Instruct; its KV cache made large enough to see: 9 sequences of 4,096 tokens)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from labdesk.memory import GIB
from labdesk.models.engine import plan_for
from labdesk.models.ggufinfo import read_gguf
from labdesk.recipes import load_recipe

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).with_name("rss_generate.py")
REPO = Path(__file__).resolve().parents[2]
OVERRIDES = ["engine.n_ctx=4096", "generate.samples_per_leaf=2", "generate.max_rounds=1"]


def _measure(tmp_path: Path, keep: bool, link: Callable[[Path], None]) -> dict[str, int]:
    link(tmp_path / "home")  # the pulled teacher, where a pull puts it
    taxonomy = tmp_path / "taxonomy"
    leaf = "compositional_skills/writing/freeform/haiku"
    shutil.copytree(REPO / "taxonomy" / leaf, taxonomy / leaf)
    env = {**os.environ, "LABDESK_HOME": str(tmp_path / "home"), "KEEP_ENGINES": str(int(keep))}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(taxonomy), *OVERRIDES],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rss: dict[str, int] = json.loads(result.stdout.splitlines()[-1])
    return rss


def test_resident_memory_drops_back_after_the_generate_stage(
    tmp_path: Path, link_smollm2: Callable[[Path], None], smollm2: Path
) -> None:
    rss = _measure(tmp_path, keep=False, link=link_smollm2)
    teacher = read_gguf(smollm2)
    plan = plan_for(teacher, load_recipe("tiny", OVERRIDES).engine, 0)
    planned = plan.weights + plan.kv_cache  # what it surely holds; the rest of a plan is headroom
    rise, left = rss["peak"] - rss["generate"], rss["mix"] - rss["generate"]
    assert rss["engines_cached"] == 0
    assert rise > 0.6 * planned, f"the teacher never looked loaded: {rss}"
    assert rss["peak"] - rss["mix"] > 0.75 * planned, f"{rss}, planned {planned / GIB:.3f} GiB"
    assert left < 0.3 * rise, rss


def test_without_the_release_the_teacher_stays(
    tmp_path: Path, link_smollm2: Callable[[Path], None]
) -> None:
    """The control: the same run keeping its engines ends generate at its peak."""
    rss = _measure(tmp_path, keep=True, link=link_smollm2)
    assert rss["engines_cached"] == 1
    assert rss["mix"] - rss["generate"] > 0.9 * (rss["peak"] - rss["generate"]), rss
