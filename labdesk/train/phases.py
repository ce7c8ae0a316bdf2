"""Run the recipe's phases in order, each starting from the previous phase's adapter.

A finished phase leaves ``phase_dir/adapter`` (PEFT layout) and ``phase_dir/done.json``; the
last one is copied to ``run.final_adapter`` for export. ``resume`` skips finished phases and
continues the unfinished one from its newest checkpoint. The first Ctrl-C asks the loop to save
a checkpoint after the current step and stop; a second one interrupts at once.

Under torchrun every process runs `train_run` with its `World`: all of them train, only the main
one writes the run's files and reports, and they wait for each other after each phase so that
the next phase starts from the adapter the main one has just written.
"""

from __future__ import annotations

import platform
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from labdesk.errors import ConfigError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.fileio import read_jsonl, write_json
from labdesk.recipes import ModelRef, PhaseSettings, Recipe, TrainSettings
from labdesk.runs import RunPaths
from labdesk.train.distributed import ALONE, World
from labdesk.workspace import Workspace

PhaseTrainer = Callable[..., list[float]]


def choose_backend(settings: TrainSettings) -> str:
    """`auto`: MLX on Apple Silicon, torch everywhere else."""
    if settings.backend != "auto":
        return settings.backend
    apple = sys.platform == "darwin" and platform.machine() == "arm64"
    return "mlx" if apple else "torch"


def phase_trainer(backend: str) -> PhaseTrainer:
    if backend == "mlx":
        from labdesk.train import mlx_backend

        return mlx_backend.train_phase
    from labdesk.train import torch_backend

    return torch_backend.train_phase


def resolve_student(ref: ModelRef, workspace: Workspace | None = None) -> Path:
    """The student's Hugging Face folder on this machine (built or cached; never downloads)."""
    from labdesk.models.store import resolve_model

    return resolve_model(ref, workspace or Workspace.open(), want="hf")


@contextmanager
def ctrl_c_requests_stop() -> Iterator[Callable[[], bool]]:
    """In the main thread, the first SIGINT sets a flag the loop polls after each step."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag.is_set
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if flag.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        flag.set()

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


def _phase_done(run: RunPaths, name: str) -> bool:
    return (run.phase_dir(name) / "done.json").is_file()


def train_run(
    run: RunPaths,
    recipe: Recipe,
    model_dir: Path,
    reporter: Reporter = null_reporter,
    *,
    resume: bool = False,
    only_phase: str | None = None,
    stop: Callable[[], bool] | None = None,
    check_memory: bool = True,
    world: World = ALONE,
) -> dict[str, list[float]]:
    """Train the phases (all, or `only_phase`); returns the losses of the steps run now."""
    settings = recipe.train
    backend = choose_backend(settings)
    trainer = phase_trainer(backend)
    names = [p.name for p in settings.phases]
    if only_phase is not None and only_phase not in names:
        raise ConfigError(f"no phase '{only_phase}' in this recipe", hint=f"use one of {names}")
    if not world.alone:
        if backend != "torch":
            raise ConfigError(
                f"training on several processes needs the torch backend, not {backend}",
                where="train.backend",
                hint="train in one process, or set train.backend: torch",
            )
        trainer = partial(trainer, world=world)
        if not world.main:
            reporter = null_reporter
    reporter(Event("train", "message", f"backend: {backend}, student: {model_dir}"))
    results: dict[str, list[float]] = {}
    previous: Path | None = None
    with ctrl_c_requests_stop() as interrupted:

        def should_stop() -> bool:
            return interrupted() or (stop is not None and stop())

        for phase in settings.phases:
            phase_dir = run.phase_dir(phase.name)
            selected = only_phase is None or only_phase == phase.name
            if not selected or (resume and only_phase is None and _phase_done(run, phase.name)):
                if _phase_done(run, phase.name):
                    previous = phase_dir / "adapter"
                continue
            results[phase.name] = _train_phase(
                trainer,
                run,
                recipe,
                model_dir,
                phase,
                previous,
                reporter,
                resume,
                should_stop,
                check_memory,
                world,
            )
            previous = phase_dir / "adapter"
            world.barrier()  # the next phase loads the adapter the main process just wrote
    last = run.phase_dir(settings.phases[-1].name)
    if world.main and _phase_done(run, settings.phases[-1].name):
        tmp = run.final_adapter.parent / ".final.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(last / "adapter", tmp)
        shutil.rmtree(run.final_adapter, ignore_errors=True)
        tmp.rename(run.final_adapter)
        reporter(Event("train", "done", f"final adapter: {run.final_adapter}"))
    return results


def _train_phase(
    trainer: PhaseTrainer,
    run: RunPaths,
    recipe: Recipe,
    model_dir: Path,
    phase: PhaseSettings,
    previous: Path | None,
    reporter: Reporter,
    resume: bool,
    stop: Callable[[], bool],
    check_memory: bool,
    world: World,
) -> list[float]:
    data = run.phase_data(phase.name)
    if not data.is_file():
        raise ConfigError(
            f"no mixed data for {phase.name}", where=str(data), hint="run `labdesk mix`"
        )
    samples = read_jsonl(data)
    if check_memory and world.main:
        from labdesk.memory import check_training_fits

        check_training_fits(model_dir, recipe.train, phase, reporter, processes=world.size)
    phase_dir = run.phase_dir(phase.name)
    if world.main:
        (phase_dir / "done.json").unlink(missing_ok=True)
    losses = trainer(
        model_dir,
        samples,
        phase,
        recipe.train,
        phase_dir,
        previous,
        reporter,
        resume=resume,
        stop=stop,
    )
    if world.main:
        write_json(phase_dir / "done.json", {"phase": phase.name, "steps_run": len(losses)})
    return losses
