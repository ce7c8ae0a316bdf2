"""`labdesk serve RUN`: the run's tuned model as an OpenAI-compatible endpoint on 127.0.0.1."""

from __future__ import annotations

import argparse
from typing import Any

from labdesk.cli.runargs import add_run_arguments, open_run

DEFAULT_PORT = 8000


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="serve a tuned model to other programs (OpenAI-compatible, on this machine)",
        description="Serve RUN's exported model with llama-cpp-python's server on "
        "http://127.0.0.1:PORT/v1, with the run's chat template and system prompt. Any "
        "OpenAI client reaches it with base_url set to that address. Ctrl-C stops it.",
    )
    add_run_arguments(parser)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from labdesk.cli.render import console
    from labdesk.export.registry import find_tuned
    from labdesk.serve import endpoint, serve

    # serving only reads the run's export, so it takes no lock
    with open_run(args, "labdesk serve", record=False, existing=True) as (recipe, run, ws):
        point = endpoint(find_tuned(ws, run.root.name), recipe, args.port)
    console.print(
        f"serving [bold]{point.name}[/] at {point.url} (model name '{point.name}'); "
        "Ctrl-C stops it",
        highlight=False,
    )
    serve(point, n_gpu_layers=recipe.engine.n_gpu_layers, n_threads=recipe.engine.n_threads)
    return 0
