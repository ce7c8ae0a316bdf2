"""`labdesk mix`: build the phase datasets (with replay) from a run's accepted samples."""

from __future__ import annotations

import argparse
from typing import Any

from labdesk.cli.runargs import add_run_arguments, open_run


def register(sub: Any) -> None:
    parser = sub.add_parser("mix", help="build the knowledge and skills datasets with replay")
    add_run_arguments(parser)
    parser.set_defaults(handler=_mix)


def _mix(args: argparse.Namespace) -> int:
    from rich.table import Table

    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.train.mix import mix_run
    from labdesk.train.replay import student_replay

    recipe, run, ws = open_run(args)
    with ProgressRenderer() as render:
        own = student_replay(recipe, ws, render)
        composition = mix_run(run, recipe.mix, recipe.system_prompt, render, self_replay=own)
    table = Table("phase", "source", "samples", "share of phase")
    for row in composition.rows:
        share = row.samples / max(1, composition.total(row.phase))
        table.add_row(row.phase, row.source, str(row.samples), f"{share:.0%}")
    console.print(table)
    console.print(f"written to {run.mixed}")
    return 0
