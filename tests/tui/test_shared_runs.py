"""One notion of a run: the app and the CLI name runs the same way, see each other's runs and
reuse each other's stages, and two processes never write into one run at once (issue 16).

Real processes on the tiny models: `labdesk generate` and `labdesk run` as a user starts them,
the app under `run_test` on the same workspace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, SelectionList

from labdesk.fileio import read_jsonl
from labdesk.runindex import stage_states
from labdesk.runlock import in_use_by
from labdesk.runs import PHASES, RunPaths
from labdesk.taxonomy import load_taxonomy
from labdesk.tui.app import LabdeskApp
from labdesk.tui.run_screen import STAGES, RunScreen
from labdesk.tui.train_screen import TrainScreen

from .helpers import settle, tick_only

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SIZE = (140, 45)
LEAF = "compositional_skills/writing/freeform/haiku"
TIMEOUT = 1500


def _labdesk(*args: str) -> list[str]:
    return [sys.executable, "-m", "labdesk", *args]


def test_a_second_generate_on_the_same_run_is_refused(home: Path, fast_recipe: Path) -> None:
    command = _labdesk("generate", "shared", "--recipe", str(fast_recipe))
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = RunPaths(home / "runs" / "shared")
    try:
        deadline = time.monotonic() + 300
        while in_use_by(run) is None:  # the first has the run (its recipe is recorded)
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first generate never took the run"
            time.sleep(0.05)
        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        _, err = first.communicate(timeout=TIMEOUT)
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 1
    assert f"run `shared` is in use by process {first.pid} (labdesk generate)" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.returncode == 0, err[-3000:]

    # the first's data is whole: every leaf complete, every sample written once
    taxonomy = load_taxonomy(home / "taxonomy")
    report = json.loads(run.generate_report.read_text(encoding="utf-8"))
    counted = {"accepted": 0, "rejected": 0}
    for leaf in taxonomy.leaves:
        manifest = json.loads(run.leaf_manifest(leaf.slug).read_text(encoding="utf-8"))
        assert manifest["complete"], leaf.path
        for kind, path in (
            ("accepted", run.accepted(leaf.slug)),
            ("rejected", run.rejected(leaf.slug)),
        ):
            ids = [row["metadata"]["id"] for row in read_jsonl(path)]
            assert len(ids) == len(set(ids)), f"{path}: a sample written twice"
            counted[kind] += len(ids)
    assert counted == {"accepted": report["accepted"], "rejected": report["rejected"]}
    assert in_use_by(run) is None  # let go when done


async def test_the_app_and_the_cli_share_one_run(home: Path, fast_recipe: Path) -> None:
    # the app names the run after the recipe, as the CLI does, and generates one leaf in it
    app = LabdeskApp(recipe=str(fast_recipe), mode="generate")
    assert app.run_name == "fast"
    run = RunPaths(home / "runs" / "fast")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tick_only(pilot, LEAF).action_start()
        await settle(pilot)
    samples = run.accepted(LEAF.replace("/", "__"))
    made_by_app = samples.read_bytes(), samples.stat().st_mtime_ns

    # `labdesk run` with the same recipe works on the same run and keeps the app's leaf
    env = {**os.environ, "LABDESK_HOME": str(home)}
    command = _labdesk("run", "--recipe", str(fast_recipe), "--format", "json")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout)["run"] == "fast"
    assert (samples.read_bytes(), samples.stat().st_mtime_ns) == made_by_app
    assert all(state == "done" for state in stage_states(run).values())

    # the app shows the CLI's run: its stages done, its phases trained, nothing left to generate
    again = LabdeskApp(recipe=str(fast_recipe), mode="run")
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = again.screen
        assert isinstance(screen, RunScreen)
        table = screen.query_one("#stages", DataTable)
        assert [table.get_cell(s, "state") for s in STAGES] == ["done"] * len(STAGES)
        assert "model:" in str(screen.query_one("#summary").render())

        await pilot.press("f4")
        await settle(pilot)
        train = again.screen
        assert isinstance(train, TrainScreen)
        phases = train.query_one("#phases", DataTable)
        assert [phases.get_cell(p, "state") for p in PHASES] == ["done"] * len(PHASES)

        await pilot.press("f3")
        await settle(pilot)
        assert not again.screen.query_one("#leaves", SelectionList).selected

        await pilot.press("f7", "ctrl+r")  # Run all: every stage but the check is skipped
        await settle(pilot)
        assert [table.get_cell(s, "state") for s in STAGES] == ["ran"] + ["skipped"] * 5
