"""`labdesk mix`: build the phase datasets (with replay) from a run's accepted samples."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labdesk.cli.runargs import add_run_arguments, open_run

if TYPE_CHECKING:
    from labdesk.events import Reporter
    from labdesk.recipes import Recipe
    from labdesk.runs import RunPaths
    from labdesk.workspace import Workspace


def register(sub: Any) -> None:
    parser = sub.add_parser("mix", help="build the knowledge and skills datasets with replay")
    add_run_arguments(parser)
    parser.add_argument(
        "--taxonomy", type=Path, metavar="DIR", help="taxonomy folder (default: the workspace's)"
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="mix what there is, even when leaves of the taxonomy have no accepted samples",
    )
    parser.set_defaults(handler=_mix)


def _mix(args: argparse.Namespace) -> int:
    from rich.table import Table

    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.runs import require_data
    from labdesk.train.mix import mix_run
    from labdesk.train.replay import student_replay

    with (
        open_run(args, "labdesk mix", existing=True) as (recipe, run, ws),
        ProgressRenderer() as render,
    ):
        kept = _leaves(args, ws, recipe, run, render)
        leaves = [] if args.allow_missing else kept
        require_data(run, leaves)  # before the student answers its replay prompts
        own = student_replay(recipe, ws, render)
        composition = mix_run(
            run, recipe.mix, recipe.system_prompt, render, self_replay=own, leaves=leaves
        )
    table = Table("phase", "source", "samples", "share of phase")
    for row in composition.rows:
        share = row.samples / max(1, composition.total(row.phase))
        table.add_row(row.phase, row.source, str(row.samples), f"{share:.0%}")
    console.print(table)
    console.print(f"written to {run.mixed}")
    return 0


def _leaves(
    args: argparse.Namespace, ws: Workspace, recipe: Recipe, run: RunPaths, render: Reporter
) -> list[str]:
    """The taxonomy's leaves the recipe works on. A leaf its `skip_leaves` leaves out must
    hold no samples in the run: generation removes them, and mixing them would train it."""
    from labdesk.errors import ConfigError
    from labdesk.generate.selection import without_skipped
    from labdesk.taxonomy import load_taxonomy

    leaves = load_taxonomy(args.taxonomy or ws.ensure_taxonomy()).leaves
    kept = without_skipped(leaves, recipe.skip_leaves, reporter=render, stage="mix")
    working = {leaf.slug for leaf in kept}
    held = [x.path for x in leaves if x.slug not in working and run.accepted(x.slug).exists()]
    if held:
        raise ConfigError(
            f"the run still holds samples of {', '.join(held)}, which the recipe's skip_leaves "
            "leaves out",
            where=str(run.generated),
            hint=f"`labdesk generate {run.root.name}` removes them (their teacher replies stay "
            "cached)",
        )
    return [leaf.path for leaf in kept]
