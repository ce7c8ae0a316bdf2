"""Real torch/peft training on the real stories260K student: phases, checkpoints, resume."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labdesk.errors import Cancelled, LabdeskError
from labdesk.fileio import read_jsonl
from labdesk.runs import RunPaths
from labdesk.train.mix import mix_run
from labdesk.train.phases import train_run
from tests.train.helpers import kill_at_first_checkpoint, tiny_recipe

REPO = Path(__file__).resolve().parents[2]


def _mixed(run: RunPaths, student: Path, **train: object):  # type: ignore[no-untyped-def]
    recipe = tiny_recipe(student, **train)
    mix_run(run, recipe.mix, recipe.system_prompt)
    return recipe


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_every_phase_lowers_its_loss_and_leaves_a_peft_adapter(
    run_paths: RunPaths, stories_dir: Path
) -> None:
    recipe = _mixed(run_paths, stories_dir, max_seq_len=256)
    for phase in recipe.train.phases:
        phase.epochs = 4
    events = []
    losses = train_run(run_paths, recipe, stories_dir, events.append)
    assert list(losses) == ["knowledge_1", "knowledge_2", "skills"]
    for name, values in losses.items():
        assert len(values) >= 3, name
        third = max(1, len(values) // 3)
        assert _mean(values[-third:]) < _mean(values[:third]), (name, values)
        history = read_jsonl(run_paths.phase_dir(name) / "loss.jsonl")
        assert [r["loss"] for r in history] == pytest.approx(values)
        assert {"lr", "tokens_per_s", "eta_s", "memory_gb"} <= set(history[0])
    final = run_paths.final_adapter
    assert sorted(p.name for p in final.iterdir() if p.suffix in (".json", ".safetensors")) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    progress = [e for e in events if e.kind == "progress" and e.step == "skills"]
    assert progress[-1].done == progress[-1].total == len(losses["skills"])


def test_stop_mid_phase_then_resume_reproduces_the_losses(
    run_paths: RunPaths, stories_dir: Path, tmp_path: Path
) -> None:
    recipe = _mixed(run_paths, stories_dir, lora_dropout=0.1)
    recipe.train.phases = recipe.train.phases[:1]
    recipe.train.phases[0].epochs = 2
    # one sample per step (knowledge_1 holds 6), so that stopping after 5 is mid-phase
    recipe.train.phases[0].batch_tokens = recipe.train.phases[0].effective_batch_tokens = 72
    recipe.train.checkpoint_every = 3
    straight = train_run(run_paths, recipe, stories_dir)["knowledge_1"]
    assert len(straight) >= 8

    calls = {"n": 0}

    def stop_after_five() -> bool:
        calls["n"] += 1
        return calls["n"] == 5

    with pytest.raises(Cancelled, match="after step 5"):
        train_run(run_paths, recipe, stories_dir, stop=stop_after_five)
    history = read_jsonl(run_paths.phase_dir("knowledge_1") / "loss.jsonl")
    assert len(history) == 5
    resumed = train_run(run_paths, recipe, stories_dir, resume=True)["knowledge_1"]
    assert resumed == pytest.approx(straight[5:], rel=1e-4, abs=1e-5)
    history = read_jsonl(run_paths.phase_dir("knowledge_1") / "loss.jsonl")
    assert [r["loss"] for r in history] == pytest.approx(straight, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("failing", ["weights", "step file"])
def test_a_checkpoint_the_disk_cannot_hold_stops_with_a_clear_error_and_keeps_the_last(
    run_paths: RunPaths, stories_dir: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """A full disk cannot be made here. From the second checkpoint on, either torch.save fails
    the way it did on a full disk (a RuntimeError from its zip writer) or the small step file
    after it meets the OS's ENOSPC."""
    import torch

    import labdesk.fileio

    recipe = _mixed(run_paths, stories_dir)
    recipe.train.phases = recipe.train.phases[:1]
    recipe.train.phases[0].epochs = 2
    recipe.train.phases[0].batch_tokens = recipe.train.phases[0].effective_batch_tokens = 72
    recipe.train.checkpoint_every = 2
    straight = train_run(run_paths, recipe, stories_dir)["knowledge_1"]
    real_save, real_fsync, saves = torch.save, os.fsync, {"n": 0}

    def save_until_full(obj: object, f: object, *args: object, **kwargs: object) -> None:
        saves["n"] += 1
        if saves["n"] > 1:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")
        real_save(obj, f, *args, **kwargs)

    def fsync_until_full(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(".step.json."):
            saves["n"] += 1
            if saves["n"] > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    if failing == "weights":
        monkeypatch.setattr(torch, "save", save_until_full)
    else:
        monkeypatch.setattr(labdesk.fileio.os, "fsync", fsync_until_full)
    with pytest.raises(LabdeskError, match="could not write checkpoint-000004") as info:
        train_run(run_paths, recipe, stories_dir)
    assert "GiB free" in (info.value.hint or "") and "previous checkpoint is kept" in (
        info.value.hint or ""
    )
    phase_dir = run_paths.phase_dir("knowledge_1")
    assert json.loads((phase_dir / "latest.json").read_text())["step"] == 2
    assert sorted(p.name for p in phase_dir.glob("*checkpoint-*")) == ["checkpoint-000002"]
    monkeypatch.undo()
    resumed = train_run(run_paths, recipe, stories_dir, resume=True)["knowledge_1"]
    assert resumed == pytest.approx(straight[2:], rel=1e-4, abs=1e-5)


KILL_SCRIPT = """
import sys
from pathlib import Path
from labdesk.runs import RunPaths
from labdesk.recipes import Recipe
from labdesk.train.phases import train_run
recipe = Recipe.model_validate_json(Path(sys.argv[1]).read_text())
train_run(RunPaths(Path(sys.argv[2])), recipe, Path(sys.argv[3]), resume=True)
"""


def test_killed_process_resumes_from_its_last_checkpoint(
    run_paths: RunPaths, stories_dir: Path, tmp_path: Path
) -> None:
    """SIGKILL a real training process after a checkpoint, then resume: same losses."""
    recipe = _mixed(run_paths, stories_dir)
    recipe.train.phases = recipe.train.phases[:1]
    recipe.train.phases[0].epochs = 3
    recipe.train.checkpoint_every = 2
    reference = RunPaths(tmp_path / "reference")
    reference.mixed.mkdir(parents=True)
    for name in ("knowledge_1",):
        reference.phase_data(name).write_bytes(run_paths.phase_data(name).read_bytes())
    straight = train_run(reference, recipe, stories_dir)["knowledge_1"]

    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(recipe.model_dump_json())
    args = [
        sys.executable,
        "-c",
        KILL_SCRIPT,
        str(recipe_file),
        str(run_paths.root),
        str(stories_dir),
    ]
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    kill_at_first_checkpoint(proc, run_paths.phase_dir("knowledge_1"))
    done = len(read_jsonl(run_paths.phase_dir("knowledge_1") / "loss.jsonl"))
    assert done < len(straight), "killed too late to test resuming"
    resumed = train_run(run_paths, recipe, stories_dir, resume=True)["knowledge_1"]
    assert len(resumed) < len(straight)
    assert resumed == pytest.approx(straight[-len(resumed) :], rel=1e-4, abs=1e-5)
