"""`labdesk train`: LoRA-tune the student phase after phase (resumable, Ctrl-C safe)."""

from __future__ import annotations

import argparse
from typing import Any

from labdesk.cli.runargs import add_run_arguments, open_run
from labdesk.runs import PHASES


def register(sub: Any) -> None:
    parser = sub.add_parser("train", help="tune the student on the mixed data, phase by phase")
    add_run_arguments(parser)
    parser.add_argument(
        "--resume", action="store_true", help="skip finished phases, continue from the checkpoint"
    )
    parser.add_argument("--phase", choices=PHASES, help="train only this phase")
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.errors import ConfigError
    from labdesk.train.phases import resolve_student, train_run

    with open_run(args, "labdesk train", existing=True) as (recipe, run, ws):
        data = run.phase_data(args.phase or PHASES[0])
        if not data.is_file():
            raise ConfigError(
                f"run `{run.name}` has no mixed data yet",
                where=str(data),
                hint=f"mix it first: `labdesk mix {run.name}`",
            )
        student = resolve_student(recipe.student, ws)
        with ProgressRenderer() as render:
            losses = train_run(
                run, recipe, student, render, resume=args.resume, only_phase=args.phase
            )
    for phase, values in losses.items():
        if values:
            console.print(f"{phase}: {len(values)} steps, loss {values[0]:.3f} → {values[-1]:.3f}")
    if run.final_adapter.is_dir():
        console.print(f"adapter: {run.final_adapter}")
    return 0
