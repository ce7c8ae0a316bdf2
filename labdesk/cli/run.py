"""`labdesk run`: the whole flow, each stage skipped when current, resumable after any stop."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labdesk.cli.runargs import add_run_arguments, open_run

if TYPE_CHECKING:
    from labdesk.flow import FlowResult


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "run", help="taxonomy → generate → mix → train → export → evaluate, in one go"
    )
    add_run_arguments(parser)
    parser.add_argument("--taxonomy", type=Path, help="taxonomy folder (default: the workspace's)")
    parser.add_argument(
        "--format", choices=["human", "json"], default="human", help="how to print the summary"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from labdesk.cli.render import ProgressRenderer
    from labdesk.flow import run_flow

    with open_run(args, "labdesk run") as (recipe, run, ws), ProgressRenderer() as render:
        result = run_flow(
            recipe, ws, run_name=run.name, taxonomy_root=args.taxonomy, reporter=render
        )
    if args.format == "json":
        stages = [
            {"stage": o.name, "status": o.status, "seconds": round(o.seconds, 3)}
            for o in result.stages
        ]
        print(json.dumps({"stages": stages, **result.summary}, indent=2))
    else:
        _print(result)
    return 0


def _print(result: FlowResult) -> None:
    from rich.table import Table

    from labdesk.cli.render import console

    stages = Table("stage", "status", "seconds", title=f"run {result.run.root.name}")
    for outcome in result.stages:
        stages.add_row(outcome.name, outcome.status, f"{outcome.seconds:.1f}")
    console.print(stages)
    summary = result.summary
    if data := summary.get("data"):
        console.print(f"data: {data['accepted']} accepted, {data['rejected']} rejected samples")
    if mixed := summary.get("mixed"):
        console.print("mixed: " + ", ".join(f"{phase} {n}" for phase, n in mixed.items()))
    for phase, loss in summary.get("losses", {}).items():
        console.print(f"loss {phase}: {loss['first']:.3f} → {loss['last']:.3f}")
    if rows := summary.get("evaluation"):
        from labdesk.cli.evaltable import print_evaluation

        print_evaluation(rows, summary.get("examples", []), "evaluation")
    if summary.get("model"):
        console.print(f"model: {summary['model']}")
        console.print(f"chat with it: [bold]labdesk chat {result.run.root.name}[/]")
