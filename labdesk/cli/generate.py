"""`labdesk generate`: synthetic training data for the taxonomy's leaves, with a local judge."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labdesk.cli.runargs import add_run_arguments, open_run

if TYPE_CHECKING:
    from labdesk.generate import GenerationReport


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "generate",
        help="write and judge synthetic training data for each taxonomy leaf",
        description="Generate training samples per leaf with the recipe's teacher and judge. "
        "Work is kept as it is decided: an interrupted run resumes where it stopped, and a "
        "leaf whose content, generate settings and models are unchanged is not generated again.",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--leaf",
        action="append",
        default=[],
        metavar="PATH",
        help="only this leaf (or folder of leaves); repeatable",
    )
    parser.add_argument(
        "--taxonomy", type=Path, metavar="DIR", help="taxonomy folder (default: the workspace's)"
    )
    parser.add_argument(
        "--preview",
        type=int,
        metavar="N",
        help="try N samples per leaf and print them with the judge's verdicts; writes nothing",
    )
    parser.set_defaults(handler=_generate)


def _generate(args: argparse.Namespace) -> int:
    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.errors import Cancelled, ConfigError
    from labdesk.generate import run_generation
    from labdesk.memory import fitted_recipe
    from labdesk.models.engine import release_all
    from labdesk.taxonomy import load_taxonomy

    if args.preview is not None and args.preview < 1:
        raise ConfigError("--preview needs a number of samples of at least 1")
    # a preview writes nothing into the run, so it needs no lock
    with open_run(args, "labdesk generate", record=args.preview is None) as (recipe, run, ws):
        taxonomy = load_taxonomy(args.taxonomy or ws.ensure_taxonomy())
        if not taxonomy.leaves:
            check = "labdesk taxonomy check" + (
                f" --taxonomy {args.taxonomy}" if args.taxonomy else ""
            )
            raise ConfigError(
                "the taxonomy has no valid leaf to generate from",
                where=str(taxonomy.root),
                hint=f"see why with `{check}`",
            )
        with ProgressRenderer() as render:
            staged = fitted_recipe(recipe, ws, "generate", run_name=run.root.name, reporter=render)
            try:
                report = run_generation(
                    taxonomy,
                    staged,
                    run.root,
                    ws=ws,
                    leaves=args.leaf or None,
                    preview=args.preview,
                    reporter=render,
                )
            except KeyboardInterrupt:
                # Every decided sample and every finished reply is already on disk.
                raise Cancelled(
                    "generation interrupted; run the same command again to resume"
                ) from None
            finally:
                release_all()
    if args.preview is not None:
        _print_preview(report)
    else:
        _print_report(report)
        console.print(f"written to {run.generated}")
    return 0


def _print_report(report: GenerationReport) -> None:
    from rich.table import Table

    from labdesk.cli.render import LEAF_WIDTH, console
    from labdesk.pathtext import tail_path

    table = Table(
        "leaf", "status", "accepted", "target", "rejected", "top rejections", "tokens", "time"
    )
    for leaf in report.leaves:
        top = ", ".join(f"{step} {n}" for step, n in list(leaf.rejected_by_step.items())[:3])
        reached = "green" if leaf.reached else "red"
        table.add_row(
            tail_path(leaf.leaf, LEAF_WIDTH),
            leaf.status,
            f"[{reached}]{leaf.accepted_qa}[/]"
            + (
                f" (+{leaf.accepted - leaf.accepted_qa})"
                if leaf.accepted > leaf.accepted_qa
                else ""
            ),
            str(leaf.target),
            str(leaf.rejected),
            top,
            f"{leaf.teacher_tokens + leaf.judge_tokens:,}",
            f"{leaf.seconds:.1f}s",
        )
    console.print(table)
    for leaf in report.short:
        console.print(f"[yellow]{leaf.leaf}[/]: {leaf.note}", highlight=False)


def _print_preview(report: GenerationReport) -> None:
    from rich.markup import escape

    from labdesk.cli.render import console

    for leaf in report.leaves:
        console.rule(f"{leaf.leaf} ({leaf.accepted} of {len(leaf.samples)} would be kept)")
        for sample in leaf.samples:
            verdict = (
                "[green]kept[/]" if sample["accepted"] else f"[red]dropped at {sample['step']}[/]"
            )
            console.print(f"[bold]{sample['id']}[/] ({sample['type']}): {verdict}")
            for step, said in sample["trace"]:
                console.print(f"  [dim]{escape(step)}:[/] {escape(said)}", highlight=False)
