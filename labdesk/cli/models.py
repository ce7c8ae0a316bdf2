"""`labdesk models pull|list`: bring a recipe's models into the workspace, show what is there."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("models", help="download the models a recipe needs, list them")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    pull = verbs.add_parser(
        "pull",
        help="download (or build) a recipe's teacher, judge and student, or one model",
        description="Downloads resume where they stopped; pinned files are verified by sha256.",
    )
    pull.add_argument(
        "target",
        nargs="?",
        default="demo",
        help="a recipe name or .yaml path (default: demo), or org/name@COMMIT[:file.gguf]",
    )
    pull.set_defaults(handler=_pull)
    verbs.add_parser("list", help="models in the workspace and their size").set_defaults(
        handler=_list
    )


def _pull(args: argparse.Namespace) -> int:
    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.models.store import Want, parse_ref, pull_model, recipe_needs
    from labdesk.recipes import ModelRef, load_recipe
    from labdesk.workspace import Workspace

    ws = Workspace.open()
    wanted: list[tuple[str, ModelRef, Want]]
    if "@" in args.target:
        ref = parse_ref(args.target)
        wanted = [("model", ref, "gguf" if ref.file else "hf")]
    else:
        wanted = recipe_needs(load_recipe(args.target))
    with ProgressRenderer() as renderer:
        for role, ref, want in wanted:
            if ref.endpoint:
                console.print(f"[green]✓[/] {role}: {ref.label()} (served there)")
                continue
            path = pull_model(ref, ws, want=want, reporter=renderer)
            console.print(f"[green]✓[/] {role}: {ref.label()} → {path}", highlight=False)
    return 0


def _list(args: argparse.Namespace) -> int:
    from rich.table import Table

    from labdesk.cli.render import console
    from labdesk.models.store import list_models
    from labdesk.workspace import Workspace

    ws = Workspace.open()
    models = list_models(ws)
    if not models:
        console.print(
            f"no models yet in {ws.models}: `labdesk models pull demo` brings the demo's, "
            "`labdesk doctor` names the recipe for this machine"
        )
        return 0
    table = Table("model", "revision", "files", "size", title=str(ws.models))
    for model in models:
        table.add_row(model.name, model.revision, str(model.files), _size(model.size))
    console.print(table)
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
