"""The runs of a workspace: what each one holds, who is using it, and removing one.

The CLI (`labdesk runs list|rm`) and the app read the same folders, so each sees the runs the
other made; nothing here is cached.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labdesk.errors import ConfigError
from labdesk.runlock import hold_run, in_use_by
from labdesk.runs import RunPaths

RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MADE = ("generated", "mixed", "trained", "exported", "evaluated")


@dataclass(frozen=True)
class RunInfo:
    name: str
    recipe: str | None
    """The name of the recipe the run recorded (None before its first stage)."""
    made: tuple[str, ...]
    """What it holds so far, in flow order: a subset of `MADE`."""
    changed: float
    """When anything in it last changed (seconds since the epoch)."""
    in_use_by: str | None


def check_run_name(name: str) -> str:
    """`name` when it can name a run folder (it stays inside the runs folder); else an error."""
    if not RUN_NAME.fullmatch(name):
        raise ConfigError(
            f"`{name}` cannot name a run",
            hint="use letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


def default_run_name(recipe: str) -> str:
    """The run a recipe works on when none is named: its name, as `labdesk run` names it (read
    from the file without validating it, so a broken recipe still names its run)."""
    from labdesk.recipes import available_recipes

    if recipe in available_recipes():
        return recipe
    path = Path(recipe)
    try:
        import yaml

        name = yaml.safe_load(path.read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        name = None
    return name if isinstance(name, str) and RUN_NAME.fullmatch(name) else path.stem


def recorded_recipe(run_dir: Path) -> str | None:
    """The name of the recipe a run recorded, if it did."""
    data = _read_json(RunPaths(run_dir).recipe)
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def run_names(runs_dir: Path) -> list[str]:
    if not runs_dir.is_dir():
        return []
    return sorted(p.name for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run in `runs_dir`, most recently changed first."""
    infos = [describe(RunPaths(runs_dir / name)) for name in run_names(runs_dir)]
    return sorted(infos, key=lambda info: info.changed, reverse=True)


def describe(run: RunPaths) -> RunInfo:
    return RunInfo(
        name=run.name,
        recipe=recorded_recipe(run.root),
        made=made(run),
        changed=max((p.stat().st_mtime for p in run.root.rglob("*")), default=time.time()),
        in_use_by=in_use_by(run),
    )


def made(run: RunPaths) -> tuple[str, ...]:
    """What a run holds, read from its files, whichever front end or command made them."""
    found = {
        "generated": run.generate_report.is_file(),
        "mixed": run.composition.is_file(),
        "trained": (run.final_adapter / "adapter_config.json").is_file(),
        "exported": any(run.export.glob("*.gguf")) if run.export.is_dir() else False,
        "evaluated": (run.evaluation / "report.md").is_file(),
    }
    return tuple(name for name in MADE if found[name])


def stage_states(run: RunPaths) -> dict[str, str]:
    """`labdesk run`'s ledger: stage → ``done`` or ``running`` (interrupted), as recorded."""
    state = _read_json(run.state)
    if not isinstance(state, dict):
        return {}
    return {
        stage: str(entry.get("status"))
        for stage, entry in state.items()
        if isinstance(entry, dict) and entry.get("status")
    }


def remove_run(run: RunPaths) -> None:
    """Delete a run's folder; refused (`RunBusy`) while a process uses it."""
    if not run.root.is_dir():
        raise ConfigError(
            f"there is no run `{run.name}`",
            where=str(run.root.parent),
            hint="`labdesk runs list` shows the runs there are",
        )
    with hold_run(run, "labdesk runs rm"):
        shutil.rmtree(run.root)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
