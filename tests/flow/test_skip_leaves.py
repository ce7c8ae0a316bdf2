"""A recipe's `skip_leaves`: `labdesk run` generates, mixes and trains without those leaves, and
a run's generated data holds nothing of them (the tiny recipe, SmolLM2 as the teacher)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from labdesk.errors import Cancelled, ConfigError
from labdesk.events import Event
from labdesk.flow import run_flow
from labdesk.recipes import load_recipe
from labdesk.runs import RunPaths
from labdesk.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
HAIKU = "compositional_skills/writing/freeform/haiku"
EMAIL = "compositional_skills/writing/freeform/email_tone"
QUICK = ["generate.samples_per_leaf=2", "generate.max_rounds=1"]


def _taxonomy(root: Path) -> Path:
    for leaf in (HAIKU, EMAIL):
        shutil.copytree(REPO / "taxonomy" / leaf, root / leaf)
    return root


def test_skipping_every_leaf_is_one_clear_error(tmp_path: Path) -> None:
    recipe = load_recipe("tiny", ["skip_leaves=[compositional_skills]"])
    with pytest.raises(ConfigError, match="skip_leaves leaves out every leaf") as raised:
        run_flow(recipe, Workspace.open(tmp_path / "home"), taxonomy_root=_taxonomy(tmp_path / "t"))
    assert "skip_leaves=[]" in (raised.value.hint or "")


@pytest.mark.slow
def test_a_skipped_leaf_is_neither_generated_nor_kept(
    tmp_path: Path, link_smollm2: Callable[[Path], None]
) -> None:
    home = tmp_path / "home"
    link_smollm2(home)
    ws = Workspace.open(home)
    run = RunPaths(ws.run_dir("tiny"))
    # what an earlier run without skip_leaves made of the haiku leaf
    stale = run.generated / "compositional_skills__writing__freeform__haiku"
    run.generated.mkdir(parents=True)
    Path(f"{stale}.manifest.json").write_text("{}", encoding="utf-8")
    Path(f"{stale}.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    messages: list[str] = []

    def until_mix(event: Event) -> None:
        messages.append(event.message)
        if event.stage == "run" and event.kind == "start" and event.step == "mix":
            raise Cancelled("generate is what this test looks at")

    recipe = load_recipe("tiny", [*QUICK, f"skip_leaves=[{HAIKU}]"])
    with pytest.raises(Cancelled):
        run_flow(recipe, ws, taxonomy_root=_taxonomy(tmp_path / "t"), reporter=until_mix)
    assert f"left out by the recipe's skip_leaves: {HAIKU}" in messages
    started = sorted(p.name for p in run.generated.glob("*.manifest.json"))
    assert started == ["compositional_skills__writing__freeform__email_tone.manifest.json"]
    assert not Path(f"{stale}.jsonl").exists()
