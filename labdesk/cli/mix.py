"""`labdesk mix`: build the phase datasets (with replay) from a run's accepted samples."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("mix", help="build the knowledge and skills datasets with replay")
    parser.add_argument("--recipe", default="demo", help="recipe name or .yaml path")
    parser.add_argument("--run", default="default", help="run name under the workspace")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field"
    )
    parser.set_defaults(handler=_mix)


def _mix(args: argparse.Namespace) -> int:
    from rich.table import Table

    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.recipes import load_recipe
    from labdesk.runs import RunPaths
    from labdesk.train.mix import mix_run
    from labdesk.workspace import Workspace

    recipe = load_recipe(args.recipe, args.set)
    run = RunPaths(Workspace.open().run_dir(args.run))
    with ProgressRenderer() as render:
        composition = mix_run(run, recipe.mix, recipe.system_prompt, render)
    table = Table("phase", "source", "samples", "share of phase")
    for row in composition.rows:
        share = row.samples / max(1, composition.total(row.phase))
        table.add_row(row.phase, row.source, str(row.samples), f"{share:.0%}")
    console.print(table)
    console.print(f"written to {run.mixed}")
    return 0
