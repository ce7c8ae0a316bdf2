"""The arguments every run stage shares: which recipe, which run, and recipe overrides.

A run remembers the recipe it was last run with (``<run>/recipe.json``), so after
`labdesk run --recipe cpu` the later `labdesk evaluate cpu` needs no `--recipe`.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labdesk.recipes import Recipe
    from labdesk.runs import RunPaths
    from labdesk.workspace import Workspace


def add_run_arguments(parser: Any, *, run_positional: bool = False) -> None:
    parser.add_argument(
        "--recipe",
        help="recipe name or .yaml path (default: the one the run was made with, else demo)",
    )
    if run_positional:
        parser.add_argument("run", help="run name under the workspace")
    else:
        parser.add_argument(
            "--run", help="run name under the workspace (default: the recipe's name)"
        )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field"
    )


def open_run(
    args: argparse.Namespace, *, record: bool = True
) -> tuple[Recipe, RunPaths, Workspace]:
    """The recipe and run folder a command works on; `record` saves the recipe into the run."""
    from labdesk.fileio import write_json
    from labdesk.recipes import load_recipe, load_run_recipe
    from labdesk.runs import RunPaths
    from labdesk.workspace import Workspace

    ws = Workspace.open()
    if args.run is None:
        recipe = load_recipe(args.recipe or "demo", args.set)
        run = RunPaths(ws.run_dir(recipe.name))
    else:
        run = RunPaths(ws.run_dir(args.run))
        recipe = load_run_recipe(run.recipe, args.recipe, args.set)
    if record:
        write_json(run.recipe, recipe.model_dump(mode="json"))
    return recipe, run, ws
