"""The arguments every run stage shares, spelled the same in every command: `[RUN]`, the recipe,
and recipe overrides.

`RUN` is optional everywhere and defaults to the recipe's name, as the app's does (`--run RUN`
is accepted too). A run remembers the recipe it was last run with (``<run>/recipe.json``), so
after `labdesk run cpu --recipe cpu` the later `labdesk evaluate cpu` needs no `--recipe`.
While a command works on a run it holds the run's lock: a second process is refused.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labdesk.recipes import Recipe
    from labdesk.runs import RunPaths
    from labdesk.workspace import Workspace

DEFAULT_RECIPE = "demo"


def add_run_arguments(parser: Any) -> None:
    parser.add_argument(
        "run",
        nargs="?",
        metavar="RUN",
        help="the run: a folder under the workspace's runs/ (default: the recipe's name)",
    )
    parser.add_argument("--run", dest="run_option", metavar="RUN", help="the same as RUN")
    parser.add_argument(
        "--recipe",
        help=f"recipe name or .yaml path (default: the one the run was made with, "
        f"else {DEFAULT_RECIPE})",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field"
    )


@contextlib.contextmanager
def open_run(
    args: argparse.Namespace, doing: str, *, record: bool = True, existing: bool = False
) -> Iterator[tuple[Recipe, RunPaths, Workspace]]:
    """The recipe and run a command works on, with the run's lock held for the block.

    `record` saves the recipe into the run (and so takes the lock); `existing` refuses a run
    that is not there yet (stages that read an earlier stage's output).
    """
    from labdesk.errors import ConfigError
    from labdesk.fileio import write_json
    from labdesk.recipes import load_recipe, load_run_recipe
    from labdesk.runindex import check_run_name, run_names
    from labdesk.runlock import hold_run
    from labdesk.runs import RunPaths
    from labdesk.workspace import Workspace

    name = run_name(args)
    ws = Workspace.open()
    if name is None:
        recipe = load_recipe(args.recipe or DEFAULT_RECIPE, args.set)
        name = recipe.name
        run = RunPaths(ws.run_dir(check_run_name(name)))
    else:
        run = RunPaths(ws.run_dir(check_run_name(name)))
        recipe = load_run_recipe(run.recipe, args.recipe, args.set)
    if existing and not run.root.is_dir():
        known = ", ".join(run_names(ws.runs)) or "none yet"
        raise ConfigError(
            f"there is no run `{name}` (runs: {known})",
            where=str(ws.runs),
            hint="`labdesk runs list` shows the runs and what each holds",
        )
    if not record:
        yield recipe, run, ws
        return
    with hold_run(run, doing):
        write_json(run.recipe, recipe.model_dump(mode="json"))
        yield recipe, run, ws


def run_name(args: argparse.Namespace) -> str | None:
    """RUN or --run RUN (both only when they agree)."""
    from labdesk.errors import ConfigError

    given = {n for n in (args.run, getattr(args, "run_option", None)) if n is not None}
    if len(given) > 1:
        raise ConfigError(
            f"two runs named: {' and '.join(sorted(given))}", hint="name the run once, as RUN"
        )
    return given.pop() if given else None
