"""`labdesk train`: LoRA-tune the student phase after phase (resumable, Ctrl-C safe).

`--nproc N` trains on N processes: this command checks the run, then starts torch's launcher
(torchrun), which runs `labdesk train` again in each of N worker processes; those find the
launcher's variables (RANK, WORLD_SIZE…) and train together (labdesk.train.distributed).
Running `torchrun --nproc-per-node N -m labdesk train RUN` by hand does the same.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labdesk.cli.runargs import add_run_arguments, open_run, run_name
from labdesk.runs import PHASES

if TYPE_CHECKING:
    from labdesk.recipes import Recipe
    from labdesk.runs import RunPaths
    from labdesk.train.distributed import World
    from labdesk.workspace import Workspace


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "train",
        help="tune the student on the mixed data, phase by phase",
        description="Tune the student on the run's mixed data, phase by phase. With --nproc N "
        "the phases train on N processes (one per GPU on CUDA, or CPU processes) through torch's "
        "launcher, torchrun; each optimizer step is the same global batch as in one process.",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--resume", action="store_true", help="skip finished phases, continue from the checkpoint"
    )
    parser.add_argument("--phase", choices=PHASES, help="train only this phase")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train on N processes with torchrun (one per GPU; default 1)",
    )
    parser.set_defaults(handler=_train)


def _train(args: argparse.Namespace) -> int:
    from labdesk.train.distributed import joined

    if args.nproc < 1:
        from labdesk.errors import ConfigError

        raise ConfigError(f"--nproc must be at least 1, not {args.nproc}")
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _launch(args)
    with joined(os.environ) as world:
        return _train_here(args, world)


def _train_here(args: argparse.Namespace, world: World) -> int:
    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.errors import LabdeskError
    from labdesk.events import Reporter, null_reporter
    from labdesk.train.phases import train_run

    # Only the main process takes the run's lock, records the recipe and shows progress; the
    # others read the same run and recipe (torchrun stops them all when the main one fails).
    with open_run(args, "labdesk train", existing=True, record=world.main) as (recipe, run, ws):
        if world.main:
            student = _student(recipe, run, ws, args.phase)
        world.barrier()  # by now the main process has made the student's folder if it had to
        if not world.main:
            student = _student(recipe, run, ws, args.phase)
        shown: contextlib.AbstractContextManager[Reporter] = (
            ProgressRenderer() if world.main else contextlib.nullcontext(null_reporter)
        )
        try:
            with shown as render:
                losses = train_run(
                    run,
                    recipe,
                    student,
                    render,
                    resume=args.resume,
                    only_phase=args.phase,
                    world=world,
                )
        except LabdeskError:
            # Every process reads the same run, recipe and data, so they stop on the same
            # error (a Ctrl-C too): the main one says it once. A process's own failure (a GPU
            # out of memory) is no LabdeskError and shows as it is.
            if world.main:
                raise
            return 1
    if not world.main:
        return 0
    for phase, values in losses.items():
        if values:
            console.print(f"{phase}: {len(values)} steps, loss {values[0]:.3f} → {values[-1]:.3f}")
    if run.final_adapter.is_dir():
        console.print(f"adapter: {run.final_adapter}")
    return 0


def _student(recipe: Recipe, run: RunPaths, ws: Workspace, phase: str | None) -> Path:
    """The student's folder, once the run is known to hold mixed data to train on."""
    from labdesk.errors import ConfigError
    from labdesk.train.phases import resolve_student

    data = run.phase_data(phase or PHASES[0])
    if not data.is_file():
        raise ConfigError(
            f"run `{run.name}` has no mixed data yet",
            where=str(data),
            hint=f"mix it first: `labdesk mix {run.name}`",
        )
    return resolve_student(recipe.student, ws)


def _launch(args: argparse.Namespace) -> int:
    """Check the run here (clear errors, the student built once), then run torchrun."""
    from labdesk.errors import ConfigError
    from labdesk.train.distributed import launch, worker_threads
    from labdesk.train.phases import choose_backend

    with open_run(args, "labdesk train", existing=True) as (recipe, run, ws):
        _student(recipe, run, ws, args.phase)
        if choose_backend(recipe.train) != "torch":
            raise ConfigError(
                "--nproc needs the torch backend",
                where="train.backend",
                hint="leave --nproc out, or set train.backend: torch",
            )
    # torchrun leaves the workers one CPU thread each unless told otherwise
    os.environ.setdefault("OMP_NUM_THREADS", worker_threads(args.nproc))
    launch(args.nproc, _worker_args(args))
    return 0


def _worker_args(args: argparse.Namespace) -> list[str]:
    """This command's own arguments, for the workers (without --nproc)."""
    out = ["train"]
    name = run_name(args)
    if name is not None:
        out.append(name)
    if args.recipe:
        out += ["--recipe", args.recipe]
    for item in args.set:
        out += ["--set", item]
    if args.resume:
        out.append("--resume")
    if args.phase:
        out += ["--phase", args.phase]
    if args.verbose:
        out.append("--verbose")
    return out
