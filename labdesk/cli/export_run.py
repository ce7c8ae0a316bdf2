"""The `labdesk export run RUN` verb: a trained run → a registered chat model.

Registered from the `export` command's module (`add_run_verb`); this module has no command of
its own.
"""

from __future__ import annotations

import argparse
from typing import Any

from labdesk.cli.runargs import add_run_arguments, open_run


def add_run_verb(verbs: Any) -> None:
    parser = verbs.add_parser(
        "run", help="merge a run's adapter, write + quantize its GGUF, Modelfile, register for chat"
    )
    add_run_arguments(parser)
    parser.set_defaults(handler=export_run_command)


def export_run_command(args: argparse.Namespace) -> int:
    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.export.run_export import export_run
    from labdesk.train.phases import resolve_student

    with open_run(args, "labdesk export run", existing=True) as (recipe, run, ws):
        student = resolve_student(recipe.student, ws)
        with ProgressRenderer() as render:
            model = export_run(run, recipe, ws, student_dir=student, reporter=render)
    console.print(f"chat model [bold]{model.name}[/]: {model.gguf}")
    if model.modelfile:
        console.print(f"ollama: ollama create {model.name} -f {model.modelfile}", highlight=False)
    console.print(f"chat:   labdesk chat {model.name}", highlight=False)
    return 0
