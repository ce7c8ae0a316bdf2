"""`labdesk runs list|rm`: the workspace's runs (the app's and the CLI's alike), and removing one."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("runs", help="list the runs in the workspace, or remove one")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="every run: its recipe, what it holds, who uses it")
    listing.add_argument("--format", choices=["human", "json"], default="human")
    listing.set_defaults(handler=_list)
    rm = verbs.add_parser("rm", help="delete a run's folder (its tuned chat model stays)")
    rm.add_argument("run", metavar="RUN")
    rm.add_argument("--yes", action="store_true", help="do not ask")
    rm.set_defaults(handler=_rm)


def _list(args: argparse.Namespace) -> int:
    import time

    from rich.table import Table

    from labdesk.cli.render import console
    from labdesk.runindex import list_runs
    from labdesk.workspace import Workspace

    ws = Workspace.open()
    runs = list_runs(ws.runs)
    if args.format == "json":
        print(json.dumps([vars(info) | {"made": list(info.made)} for info in runs], indent=2))
        return 0
    if not runs:
        console.print(f"no runs yet in {ws.runs}: `labdesk run --recipe tiny` makes one")
        return 0
    table = Table("run", "recipe", "holds", "changed", "in use", title=str(ws.runs))
    for info in runs:
        table.add_row(
            info.name,
            info.recipe or "–",
            ", ".join(info.made) or "nothing yet",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(info.changed)),
            info.in_use_by or "",
        )
    console.print(table)
    return 0


def _rm(args: argparse.Namespace) -> int:
    from labdesk.cli.render import console
    from labdesk.errors import ConfigError
    from labdesk.runindex import check_run_name, remove_run
    from labdesk.runs import RunPaths
    from labdesk.workspace import Workspace

    ws = Workspace.open()
    run = RunPaths(ws.run_dir(check_run_name(args.run)))
    if not args.yes and run.root.is_dir():
        if not sys.stdin.isatty():
            raise ConfigError(
                f"not removing run `{run.name}` without a yes",
                hint=f"`labdesk runs rm {run.name} --yes` removes it without asking",
            )
        answer = console.input(f"remove run [bold]{run.name}[/] and everything in it? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            console.print("kept")
            return 1
    remove_run(run)
    console.print(f"removed {run.root}")
    return 0
