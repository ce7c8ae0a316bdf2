"""Runs: one process at a time on a run, the workspace's list of runs, the same default name
in the app and the CLI, and the data every leaf must have before mixing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labdesk.errors import ConfigError
from labdesk.fileio import write_json, write_jsonl
from labdesk.runindex import (
    check_run_name,
    default_run_name,
    list_runs,
    remove_run,
    stage_states,
)
from labdesk.runlock import RunBusy, hold_run, in_use_by
from labdesk.runs import RunPaths, leaves_without_data, require_data

HOLD = (
    "import sys, time\n"
    "from labdesk.runlock import hold_run\n"
    "from labdesk.runs import RunPaths\n"
    "with hold_run(RunPaths(__import__('pathlib').Path(sys.argv[1])), 'labdesk train'):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(600)\n"
)


def test_a_run_held_by_another_process_is_refused_with_its_pid(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "runs" / "demo")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run.root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy) as info, hold_run(run, "labdesk generate"):
            pass
        assert info.value.message == (
            f"run `demo` is in use by process {holder.pid} (labdesk train)"
        )
        assert in_use_by(run) == f"process {holder.pid} (labdesk train)"
        with pytest.raises(RunBusy):
            remove_run(run)
    finally:
        holder.kill()
        holder.wait()
    # a killed holder leaves no stale lock: the OS released it with the process
    with hold_run(run, "labdesk generate"):
        assert in_use_by(run) == "this process (labdesk generate)"
    assert in_use_by(run) is None


def test_a_second_job_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "demo")
    busy = r"in use by this process \(the labdesk app: generate\)"
    with (
        hold_run(run, "the labdesk app: generate"),
        pytest.raises(RunBusy, match=busy),
        hold_run(run, "the labdesk app: train"),
    ):
        pass
    with hold_run(run, "the labdesk app: train"):
        pass


def test_runs_are_listed_with_what_they_hold(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    old, new = RunPaths(runs / "old"), RunPaths(runs / "new")
    write_json(old.recipe, {"name": "tiny"})
    write_json(old.generate_report, {"accepted": 1, "rejected": 0})
    write_json(
        old.state, {"generate": {"key": "k", "status": "done"}, "mix": {"status": "running"}}
    )
    time.sleep(0.01)
    new.root.mkdir(parents=True)
    (runs / ".hidden").mkdir()
    infos = list_runs(runs)
    assert [i.name for i in infos] == ["new", "old"]  # most recently changed first
    assert (infos[1].recipe, infos[1].made) == ("tiny", ("generated",))
    assert (infos[0].recipe, infos[0].made, infos[0].in_use_by) == (None, (), None)
    assert stage_states(old) == {"generate": "done", "mix": "running"}
    remove_run(old)
    assert not old.root.exists()
    with pytest.raises(ConfigError, match="there is no run `old`"):
        remove_run(old)


def test_run_names_stay_inside_the_runs_folder() -> None:
    assert check_run_name("cuda-8gb.v2_x") == "cuda-8gb.v2_x"
    for bad in ("", "../x", "a/b", ".hidden", "a b", "x" * 101):
        with pytest.raises(ConfigError, match="cannot name a run"):
            check_run_name(bad)


def test_the_default_run_is_the_recipes_name_as_the_cli_names_it(tmp_path: Path) -> None:
    assert default_run_name("tiny") == "tiny"
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("name: fast\nteacher: {builtin: tiny-teacher}\n")
    assert default_run_name(str(recipe)) == "fast"
    recipe.write_text("name: [not, a, name]\n")  # broken: named after its file
    assert default_run_name(str(recipe)) == "mine"


def test_leaves_without_accepted_samples_are_named(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    leaves = ["knowledge/a/b", "compositional_skills/c/d", "compositional_skills/e/f"]
    write_jsonl(run.accepted("compositional_skills__c__d"), [{"messages": []}])
    run.accepted("compositional_skills__e__f").touch()  # generated, all rejected
    write_json(run.leaf_manifest("compositional_skills__e__f"), {"complete": True})
    assert leaves_without_data(run, leaves) == ["compositional_skills/e/f", "knowledge/a/b"]
    # by default: the leaves generation started on
    assert leaves_without_data(run) == ["compositional_skills/e/f"]
    with pytest.raises(ConfigError) as info:
        require_data(run, leaves)
    assert "2 leaf(s) have no accepted samples" in info.value.message
    assert "knowledge/a/b" in info.value.message
    assert info.value.hint is not None and "`labdesk generate run`" in info.value.hint
    with pytest.raises(ConfigError) as info:  # only a leaf whose samples were all rejected
        require_data(run, ["compositional_skills/e/f"])
    assert info.value.hint is not None and "--preview 3" in info.value.hint
    require_data(run, [])  # nothing required: nothing refused


@pytest.mark.skipif(os.name == "nt", reason="the message names a POSIX pid")
def test_the_lock_file_says_who_holds_it(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "r")
    with hold_run(run, "labdesk mix"):
        assert run.lock.read_text() == f"{os.getpid()} labdesk mix\n"
    assert run.lock.read_text() == ""
