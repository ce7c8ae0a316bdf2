"""`labdesk mix`: build the phase datasets (with replay) from a run's accepted samples."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from labdesk.cli.runargs import add_run_arguments, open_run


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
    from labdesk.taxonomy import load_taxonomy
    from labdesk.train.mix import leaves_to_mix, mix_for_recipe

    with (
        open_run(args, "labdesk mix", existing=True) as (recipe, run, ws),
        ProgressRenderer() as render,
    ):
        taxonomy = load_taxonomy(args.taxonomy or ws.ensure_taxonomy())
        kept = leaves_to_mix(taxonomy.leaves, recipe.skip_leaves, run, render)
        leaves = [] if args.allow_missing else kept
        composition = mix_for_recipe(run, recipe, ws, render, leaves=leaves)
    table = Table("phase", "source", "samples", "share of phase")
    for row in composition.rows:
        share = row.samples / max(1, composition.total(row.phase))
        table.add_row(row.phase, row.source, str(row.samples), f"{share:.0%}")
    console.print(table)
    console.print(f"written to {run.mixed}")
    return 0
