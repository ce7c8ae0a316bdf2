"""A recipe's `skip_leaves`: `labdesk run`, `labdesk generate` and `labdesk mix` work without
those leaves, and a run's generated data holds nothing of them (the tiny recipe, SmolLM2 as the
teacher)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from labdesk.errors import Cancelled, ConfigError
from labdesk.events import Event
from labdesk.flow import run_flow
from labdesk.generate import run_generation
from labdesk.recipes import load_recipe
from labdesk.runs import RunPaths
from labdesk.taxonomy import load_taxonomy
from labdesk.workspace import Workspace
from tests.seeded_runs import write_seed_samples

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


def test_generating_only_skipped_leaves_is_one_clear_error(tmp_path: Path) -> None:
    """`labdesk generate --leaf` naming a skipped leaf: refused before any model loads."""
    recipe = load_recipe("tiny", [f"skip_leaves=[{HAIKU}]"])
    taxonomy = load_taxonomy(_taxonomy(tmp_path / "t"))
    ws = Workspace.open(tmp_path / "home")
    with pytest.raises(ConfigError, match=f"every leaf there was to work on: {HAIKU}"):
        run_generation(taxonomy, recipe, tmp_path / "run", ws=ws, leaves=[HAIKU])


def test_labdesk_mix_needs_no_data_for_a_skipped_leaf(workspace_home: Path) -> None:
    ws = Workspace.open()
    run = RunPaths(ws.run_dir("partial"))
    leaves = load_taxonomy(ws.ensure_taxonomy()).leaves
    write_seed_samples(run, [leaf for leaf in leaves if leaf.kind != "knowledge"])

    def mix(*overrides: str) -> subprocess.CompletedProcess[str]:
        command = ["mix", "partial", "--recipe", "tiny", *(f"--set={o}" for o in overrides)]
        return subprocess.run(
            [sys.executable, "-m", "labdesk", *command], capture_output=True, text=True, timeout=300
        )

    refused = mix()
    assert refused.returncode == 1 and "knowledge/" in refused.stderr
    # a skipped leaf whose samples the run still holds: mixing would train it
    held = mix(f"skip_leaves=[knowledge,{HAIKU}]")
    assert held.returncode == 1
    assert f"the run still holds samples of {HAIKU}" in held.stderr
    assert "`labdesk generate partial`" in held.stderr
    mixed = mix("skip_leaves=[knowledge]")
    assert mixed.returncode == 0, mixed.stderr
    assert "left out by the recipe's skip_leaves: knowledge/" in mixed.stdout + mixed.stderr
    assert run.phase_data("skills").is_file()


def _with_stale_haiku(
    tmp_path: Path, link_smollm2: Callable[[Path], None]
) -> tuple[Workspace, RunPaths, Path]:
    """A workspace with SmolLM2, and the run `tiny` holding what an earlier run without
    skip_leaves made of the haiku leaf (the returned path, less its suffix)."""
    home = tmp_path / "home"
    link_smollm2(home)
    ws = Workspace.open(home)
    run = RunPaths(ws.run_dir("tiny"))
    return ws, run, _stale(run, "compositional_skills__writing__freeform__haiku")


def _stale(run: RunPaths, slug: str) -> Path:
    """A leaf's manifest, samples and reply cache, as an earlier generation left them."""
    stale = run.generated / slug
    (run.generated / ".cache").mkdir(parents=True, exist_ok=True)
    Path(f"{stale}.manifest.json").write_text("{}", encoding="utf-8")
    Path(f"{stale}.jsonl").write_text('{"messages": []}\n', encoding="utf-8")
    (run.generated / ".cache" / f"{slug}.jsonl").write_text("{}\n", encoding="utf-8")
    return stale


@pytest.mark.slow
def test_labdesk_generate_leaves_out_and_prunes_a_skipped_leaf(
    tmp_path: Path, link_smollm2: Callable[[Path], None]
) -> None:
    ws, run, stale = _with_stale_haiku(tmp_path, link_smollm2)
    gone = _stale(run, "knowledge__gone")
    messages: list[str] = []
    recipe = load_recipe("tiny", [*QUICK, f"skip_leaves=[{HAIKU}]"])
    taxonomy = load_taxonomy(_taxonomy(tmp_path / "t"))
    report = run_generation(
        taxonomy, recipe, run.root, ws=ws, reporter=lambda e: messages.append(e.message)
    )
    assert f"left out by the recipe's skip_leaves: {HAIKU}" in messages
    assert [leaf.leaf for leaf in report.leaves] == [EMAIL]
    # the skipped leaf's samples go and its teacher replies stay, for when it is taken back in
    assert not Path(f"{stale}.jsonl").exists()
    assert (run.generated / ".cache" / f"{stale.name}.jsonl").exists()
    # a leaf gone from the taxonomy loses everything
    assert not any(run.generated.rglob(f"{gone.name}*"))
    assert f"removed the samples of {gone.name}: no longer a leaf of the run's taxonomy" in messages


@pytest.mark.slow
def test_a_skipped_leaf_is_neither_generated_nor_kept(
    tmp_path: Path, link_smollm2: Callable[[Path], None]
) -> None:
    ws, run, stale = _with_stale_haiku(tmp_path, link_smollm2)
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


@pytest.mark.slow
def test_a_leaf_taken_back_in_is_answered_from_its_cache(
    tmp_path: Path, link_smollm2: Callable[[Path], None]
) -> None:
    """Skipping a leaf and then taking it back in: its samples come back without one more
    request to the teacher or the judge."""
    home = tmp_path / "home"
    link_smollm2(home)
    ws = Workspace.open(home)
    run = RunPaths(ws.run_dir("tiny"))
    taxonomy = load_taxonomy(_taxonomy(tmp_path / "t"))
    slug = "compositional_skills__writing__freeform__haiku"
    cache = run.generated / ".cache" / f"{slug}.jsonl"

    def generate(*overrides: str) -> list[list[dict[str, str]]]:
        run_generation(taxonomy, load_recipe("tiny", [*QUICK, *overrides]), run.root, ws=ws)
        files = [run.accepted(slug), run.rejected(slug)]
        rows = [
            json.loads(line) for f in files if f.exists() for line in f.read_text().splitlines()
        ]
        return sorted((row["messages"] for row in rows), key=json.dumps)

    decided = generate()
    written = cache.stat().st_mtime_ns
    assert decided
    assert generate(f"skip_leaves=[{HAIKU}]") == []
    assert generate() == decided
    assert cache.stat().st_mtime_ns == written  # nothing was asked again, nothing written
