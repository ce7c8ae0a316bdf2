"""Training on two real CPU processes (gloo) started by `labdesk train --nproc 2` via torchrun,
on the real stories260K student: the same losses as one process, and a killed run resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from labdesk.errors import ModelError
from labdesk.fileio import read_jsonl, write_json, write_jsonl
from labdesk.memory import check_training_fits
from labdesk.recipes import Recipe
from labdesk.runlock import in_use_by
from labdesk.runs import RunPaths
from labdesk.train.mix import mix_run
from labdesk.train.phases import train_run
from tests.train.helpers import (
    kill_at_first_checkpoint,
    knowledge_samples,
    skill_samples,
    tiny_recipe,
)

REPO = Path(__file__).resolve().parents[2]
PHASE = "knowledge_1"
# Two processes add their float32 gradients up in another order than one process does: on this
# run (20 steps) the largest difference measured was 6.5e-7 relative; the bound leaves 15x room.
TOLERANCE = {"rel": 1e-5, "abs": 1e-6}


def _recipe(student: Path, dropout: float = 0.0) -> Recipe:
    """knowledge_1 only: one sample per micro-batch, three micro-batches per optimizer step
    (two on rank 0, one on rank 1), 20 steps, a checkpoint every 2."""
    recipe = tiny_recipe(student, checkpoint_every=2, lora_dropout=dropout)
    phase = recipe.train.phases[0]
    phase.batch_tokens = 72
    phase.effective_batch_tokens = 3 * 72
    phase.epochs = 10
    recipe.train.phases = [phase]
    return recipe


def _workspace_run(home: Path, recipe: Recipe) -> RunPaths:
    """A run `t` in the workspace `home`, with its recipe recorded and its data mixed."""
    run = RunPaths(home / "runs" / "t")
    by_leaf: dict[str, list[dict[str, Any]]] = {}
    for row in knowledge_samples() + skill_samples():
        by_leaf.setdefault(row["metadata"]["leaf"], []).append(row)
    for leaf, rows in by_leaf.items():
        write_jsonl(run.accepted(leaf.replace("/", "__")), rows)
    mix_run(run, recipe.mix, recipe.system_prompt)
    write_json(run.recipe, recipe.model_dump(mode="json"))
    return run


def _launch(home: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`labdesk train t --nproc 2` in a process group of its own (the launcher's)."""
    env = {**os.environ, "LABDESK_HOME": str(home), "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "labdesk", "train", "t", "--nproc", "2", *extra]
    return subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)


def _losses(run: RunPaths) -> list[float]:
    return [r["loss"] for r in read_jsonl(run.phase_dir(PHASE) / "loss.jsonl")]


@pytest.mark.slow
def test_two_processes_follow_the_loss_curve_of_one(stories_dir: Path, tmp_path: Path) -> None:
    recipe = _recipe(stories_dir)
    alone = train_run(_workspace_run(tmp_path / "one", recipe), recipe, stories_dir)[PHASE]
    run = _workspace_run(tmp_path / "two", recipe)
    assert _launch(tmp_path / "two").wait(timeout=300) == 0
    assert len(alone) == 20
    assert _losses(run) == pytest.approx(alone, **TOLERANCE)
    assert alone[-1] < alone[0] * 0.9  # it learned: the comparison is not of noise
    # the main process wrote the phase's adapter, its done marker and the run's final adapter
    assert (run.phase_dir(PHASE) / "done.json").is_file()
    assert (run.final_adapter / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_from_its_checkpoint(
    stories_dir: Path, tmp_path: Path
) -> None:
    """SIGKILL the launcher's process group after a checkpoint; `--resume` on two processes
    then gives the uninterrupted run's losses, dropout masks included (each rank resumes its
    own random stream)."""
    recipe = _recipe(stories_dir, dropout=0.1)
    straight_run = _workspace_run(tmp_path / "straight", recipe)
    assert _launch(tmp_path / "straight").wait(timeout=300) == 0
    straight = _losses(straight_run)

    run = _workspace_run(tmp_path / "killed", recipe)
    kill_at_first_checkpoint(_launch(tmp_path / "killed"), run.phase_dir(PHASE), group=True)
    # the workers die with their launcher: the main one's lock on the run is released
    deadline = time.monotonic() + 30
    while in_use_by(run) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert in_use_by(run) is None, "a worker outlived its launcher"
    saved = json.loads((run.phase_dir(PHASE) / "latest.json").read_text())["step"]
    before = read_jsonl(run.phase_dir(PHASE) / "loss.jsonl")[:saved]
    assert saved < len(straight), "killed too late to test resuming"

    assert _launch(tmp_path / "killed", "--resume").wait(timeout=300) == 0
    after = read_jsonl(run.phase_dir(PHASE) / "loss.jsonl")
    assert after[:saved] == before  # kept as written (timings too): it resumed, not restarted
    assert [r["loss"] for r in after] == pytest.approx(straight, rel=1e-6, abs=1e-7)


def test_cpu_processes_share_the_ram_in_the_memory_plan(stories_dir: Path) -> None:
    """Each process holds the whole student: two on the CPU need twice the RAM of one, while
    two CUDA processes each have a GPU of their own."""
    recipe = _recipe(stories_dir)
    settings, phase = recipe.train, recipe.train.phases[0]

    def fits(device: str, room: int, processes: int = 1) -> int:
        plan = check_training_fits(
            stories_dir, settings, phase, device=device, available=room, processes=processes
        )
        return plan.total

    cpu_room = int(fits("cpu", 2**40) * 1.5)
    fits("cpu", cpu_room)
    with pytest.raises(ModelError, match="needs about"):
        fits("cpu", cpu_room, processes=2)
    fits("cuda", int(fits("cuda", 2**40) * 1.5), processes=2)
