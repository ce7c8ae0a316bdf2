"""`labdesk run --recipe tiny` end to end, then a run killed at a random stage and resumed.

Everything is real: the tiny student is built in each workspace, generation runs on llama.cpp
with the real SmolLM2 teacher, training on torch, export writes and quantizes GGUF,
evaluation asks base and tuned closed-book.

The runs here keep no prompt prefix in the KV cache between calls: the resumed run must reproduce
the uninterrupted one sample for sample, and a prefix computed in an earlier call (in another
batch shape) is not bit-identical to one computed afresh, which can flip a sampled token.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labdesk.fileio import read_jsonl
from labdesk.runs import PHASES, RunPaths
from labdesk.taxonomy import load_taxonomy

pytestmark = pytest.mark.slow

STAGES = ["generate", "mix", "train", "export", "evaluate"]
TIMEOUT = 1500
NO_PREFIX_CACHE = ["--set", "engine.reuse_prefix=false"]


def _command(home: Path) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "LABDESK_HOME": str(home)}
    cmd = [
        sys.executable,
        "-m",
        "labdesk",
        "run",
        "--recipe",
        "tiny",
        "--format",
        "json",
        *NO_PREFIX_CACHE,
    ]
    return cmd, env


def _run(home: Path) -> dict[str, Any]:
    cmd, env = _command(home)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def full_run(
    tmp_path_factory: pytest.TempPathFactory, link_smollm2: Callable[[Path], None]
) -> tuple[Path, dict[str, Any]]:
    home = tmp_path_factory.mktemp("full")
    link_smollm2(home)  # the tiny recipe's teacher, where `labdesk models pull tiny` puts it
    return home, _run(home)


def _outputs(run: RunPaths, stage: str) -> list[Path]:
    """The files a finished stage leaves, which a later run must not rewrite."""
    match stage:
        case "generate":
            return sorted(run.generated.glob("*.jsonl"))
        case "mix":
            return [run.phase_data(p) for p in PHASES] + [run.composition]
        case "train":
            return sorted(run.final_adapter.glob("*"))
        case "export":
            return sorted(p for p in run.export.rglob("*.gguf"))
        case _:
            return [run.evaluation / "report.json"]


def test_every_stage_leaves_its_artifacts(full_run: tuple[Path, dict[str, Any]]) -> None:
    home, summary = full_run
    assert [(s["stage"], s["status"]) for s in summary["stages"]] == [
        ("check", "ran"),
        *((stage, "ran") for stage in STAGES),
    ]
    run = RunPaths(home / "runs" / "tiny")

    leaves = load_taxonomy(home / "taxonomy").leaves
    assert {leaf.kind for leaf in leaves} == {"knowledge", "freeform_skill", "grounded_skill"}
    for leaf in leaves:
        assert run.leaf_manifest(leaf.slug).is_file()
        assert json.loads(run.heldout(leaf.slug).read_text())  # seeds kept for evaluation
        rows = read_jsonl(run.accepted(leaf.slug)) + read_jsonl(run.rejected(leaf.slug))
        assert rows, f"{leaf.path} produced nothing"
        for row in rows:
            assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
            assert row["metadata"]["leaf"] == leaf.path
        for row in read_jsonl(run.rejected(leaf.slug)):
            assert row["metadata"]["step"] and row["metadata"]["reason"]
    assert summary["data"]["accepted"] > 0

    for phase in PHASES:
        assert read_jsonl(run.phase_data(phase)), f"empty {phase} dataset"
        assert (run.phase_dir(phase) / "done.json").is_file()
        losses = [r["loss"] for r in read_jsonl(run.phase_dir(phase) / "loss.jsonl")]
        assert losses and all(loss == loss for loss in losses)  # present and not NaN
    assert (run.final_adapter / "adapter_config.json").is_file()

    model = Path(summary["model"])
    assert model.is_file() and model.suffix == ".gguf"
    assert list(model.parent.glob("Modelfile"))

    report = json.loads((run.evaluation / "report.json").read_text())
    assert report["leaves"] and all(leaf["items"] for leaf in report["leaves"])
    assert (run.evaluation / "report.md").is_file()


def test_killed_run_resumes_to_the_same_result(
    full_run: tuple[Path, dict[str, Any]], tmp_path: Path, link_smollm2: Callable[[Path], None]
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    target = rng.choice(STAGES)
    print(f"seed {seed}: kill during {target}")
    took = {s["stage"]: s["seconds"] for s in full_run[1]["stages"]}
    home = tmp_path / "home"
    link_smollm2(home)
    cmd, env = _command(home)
    state_file = home / "runs" / "tiny" / "state.json"

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + TIMEOUT
    state: dict[str, Any] = {}
    while proc.poll() is None and time.monotonic() < deadline:
        if state_file.is_file():
            state = json.loads(state_file.read_text())  # replaced atomically: always whole
            running = [s for s, e in state.items() if e["status"] == "running" and s in STAGES]
            if running and STAGES.index(running[0]) >= STAGES.index(target):
                # somewhere in the stage's first half, as long as it took in the full run (export
                # and evaluate take under a second: a fixed 1.5 s could outlive them)
                time.sleep(rng.uniform(0.0, 0.5 * took[target]))
                proc.send_signal(signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before reaching {target}"

    state = json.loads(state_file.read_text())
    finished = [s for s in STAGES if state.get(s, {}).get("status") == "done"]
    interrupted = [s for s in STAGES if state.get(s, {}).get("status") == "running"]
    run = RunPaths(home / "runs" / "tiny")
    before = {p: p.stat().st_mtime_ns for stage in finished for p in _outputs(run, stage)}

    summary = _run(home)
    status = {s["stage"]: s["status"] for s in summary["stages"]}
    for stage in finished:
        assert status[stage] == "skipped", (stage, status)
    for stage in interrupted:
        assert status[stage] == "resumed", (stage, status)
    for path, mtime in before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was made again"

    # the same result as the uninterrupted run
    full_home, full_summary = full_run
    full = RunPaths(full_home / "runs" / "tiny")
    for path in sorted(full.generated.glob("*.jsonl")):
        assert read_jsonl(run.generated / path.name) == read_jsonl(path), path.name
    for phase in PHASES:
        assert read_jsonl(run.phase_data(phase)) == read_jsonl(full.phase_data(phase))
        ours = [r["loss"] for r in read_jsonl(run.phase_dir(phase) / "loss.jsonl")]
        theirs = [r["loss"] for r in read_jsonl(full.phase_dir(phase) / "loss.jsonl")]
        assert ours == pytest.approx(theirs, rel=1e-4, abs=1e-5)
    assert summary["data"] == full_summary["data"]
    assert summary["mixed"] == full_summary["mixed"]


def test_a_second_run_skips_every_current_stage(full_run: tuple[Path, dict[str, Any]]) -> None:
    home, first = full_run
    again = _run(home)
    assert [(s["stage"], s["status"]) for s in again["stages"]] == [
        ("check", "ran"),
        *((stage, "skipped") for stage in STAGES),
    ]
    assert again["model"] == first["model"]
