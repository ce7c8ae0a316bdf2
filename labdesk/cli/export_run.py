"""The `labdesk export run RUN` verb: a trained run → a registered chat model.

Registered from the `export` command's module (`add_run_verb`); this module has no command of
its own.
"""

from __future__ import annotations

import argparse
from typing import Any


def add_run_verb(verbs: Any) -> None:
    parser = verbs.add_parser(
        "run", help="merge a run's adapter, write + quantize its GGUF, Modelfile, register for chat"
    )
    parser.add_argument("run", help="run name under the workspace")
    parser.add_argument("--recipe", default="demo", help="the recipe the run was trained with")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe field"
    )
    parser.set_defaults(handler=export_run_command)


def export_run_command(args: argparse.Namespace) -> int:
    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.export.run_export import export_run
    from labdesk.recipes import load_recipe
    from labdesk.runs import RunPaths
    from labdesk.train.phases import resolve_student
    from labdesk.workspace import Workspace

    recipe = load_recipe(args.recipe, args.set)
    ws = Workspace.open()
    run = RunPaths(ws.run_dir(args.run))
    student = resolve_student(recipe.student, ws)
    with ProgressRenderer() as render:
        model = export_run(run, recipe, ws, student_dir=student, reporter=render)
    console.print(f"chat model [bold]{model.name}[/]: {model.gguf}")
    if model.modelfile:
        console.print(f"ollama: ollama create {model.name} -f {model.modelfile}", highlight=False)
    console.print(f"chat:   labdesk chat {model.name}", highlight=False)
    return 0
