"""The training loop every backend shares: step plan, accumulation, schedule, checkpoints.

A backend only knows how to run one micro-batch forward/backward, take an optimizer step, and
save/load its state; this module decides what is trained when, so torch and mlx train on the
same micro-batches in the same order and resume the same way.

Checkpoints are folders ``checkpoint-<step>`` written under a temporary name and renamed into
place, then ``latest.json`` (written atomically) points at the newest one; a crash at any
moment leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from labdesk.errors import Cancelled, ConfigError, DiskFull, LabdeskError
from labdesk.events import Event, Reporter
from labdesk.fileio import append_jsonl, read_jsonl, write_json, write_jsonl
from labdesk.recipes import PhaseSettings, TrainSettings
from labdesk.train.data import MicroBatch, Plan, Tokenized, collate, epoch_plan
from labdesk.train.distributed import ALONE, World


class Stepper(Protocol):
    """What a backend provides to the loop."""

    def micro(self, batch: MicroBatch, step_loss_tokens: int) -> float:
        """Forward + backward; gradients scaled so the step's loss is a per-token mean."""

    def step(self, lr: float) -> None:
        """Apply accumulated gradients at this learning rate and clear them."""

    def save_state(self, folder: Path, rng: dict[str, Any]) -> None:
        """Adapter, optimizer state and RNG states into `folder`."""

    def load_state(self, folder: Path) -> None: ...

    def save_adapter(self, folder: Path) -> None:
        """The adapter in PEFT layout (adapter_config.json + adapter_model.safetensors)."""

    def memory_gb(self) -> float: ...


def lr_at(step: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then constant (step counts from 0).

    No decay within a phase: the LAB paper reports that decaying the rate and then starting the
    next phase at its peak again destabilises the later phases; a constant rate after warm-up
    gives each phase the same footing.
    """
    if warmup and step < warmup:
        return peak * (step + 1) / warmup
    return peak


@dataclass(frozen=True)
class StepPlan:
    """Which micro-batches make each optimizer step of a phase."""

    steps: list[list[tuple[int, int]]]
    """Per step: (epoch, micro-batch index in that epoch's plan)."""
    epochs: dict[int, Plan]

    @classmethod
    def build(cls, items: list[Tokenized], phase: PhaseSettings, train: TrainSettings) -> StepPlan:
        lengths = [len(t.input_ids) for t in items]
        # Packed rows hold max_seq_len tokens, or batch_tokens when that is smaller.
        row_len = min(train.max_seq_len, phase.batch_tokens)
        longest = max(lengths, default=1)
        if longest > row_len:
            raise ConfigError(
                f"{phase.name}: a sample of {longest} tokens does not fit a micro-batch of "
                f"batch_tokens={phase.batch_tokens}",
                where=f"train.phases[{phase.name}].batch_tokens",
                hint=f"raise batch_tokens to at least {longest}, or lower train.max_seq_len "
                f"(now {train.max_seq_len}) so longer samples are dropped or truncated",
            )
        epochs = {
            e: epoch_plan(lengths, row_len, phase.batch_tokens, train.seed, e)
            for e in range(math.ceil(phase.epochs))
        }
        per_epoch = len(epochs[0]) if epochs else 0
        micro = [(e, i) for e in sorted(epochs) for i in range(len(epochs[e]))]
        micro = micro[: max(1, math.ceil(phase.epochs * per_epoch))] if per_epoch else []
        accum = accumulation(phase)
        steps = [micro[s : s + accum] for s in range(0, len(micro), accum)]
        return cls(steps, epochs)

    def step_tokens(self, items: list[Tokenized], index: int) -> tuple[int, int]:
        """(all, loss-bearing) tokens of a whole optimizer step, known alike on every rank."""
        samples = [i for e, b in self.steps[index] for row in self.epochs[e][b] for i in row]
        return (
            sum(len(items[i].input_ids) for i in samples),
            sum(items[i].loss_tokens for i in samples),
        )


def accumulation(phase: PhaseSettings) -> int:
    return max(1, math.ceil(phase.effective_batch_tokens / phase.batch_tokens))


def read_json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def latest_checkpoint(phase_dir: Path) -> Path | None:
    pointer = read_json_or_none(phase_dir / "latest.json")
    if not pointer:
        return None
    folder = phase_dir / str(pointer["checkpoint"])
    return folder if folder.is_dir() else None


def _publish_checkpoint(stepper: Stepper, phase_dir: Path, step: int, rng: dict[str, Any]) -> None:
    name = f"checkpoint-{step:06d}"
    tmp = phase_dir / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        stepper.save_state(tmp, rng)
        write_json(tmp / "step.json", {"step": step})
    # torch reports a write cut short by a full disk as a RuntimeError, not an OSError
    except (OSError, RuntimeError, DiskFull) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        free_gib = shutil.disk_usage(phase_dir).free / 2**30
        raise LabdeskError(
            f"could not write {name} ({exc.message if isinstance(exc, DiskFull) else exc})",
            where=str(phase_dir),
            hint=f"{free_gib:.1f} GiB free there; the previous checkpoint is kept: free some "
            "space and run again to resume from it (`labdesk train` needs --resume)",
        ) from exc
    final = phase_dir / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    write_json(phase_dir / "latest.json", {"checkpoint": name, "step": step})
    for old in phase_dir.glob("checkpoint-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


def run_loop(
    stepper: Stepper,
    items: list[Tokenized],
    phase: PhaseSettings,
    train: TrainSettings,
    phase_dir: Path,
    reporter: Reporter,
    *,
    resume: bool,
    rng_state: Callable[[], dict[str, Any]],
    stop: Callable[[], bool] | None = None,
    world: World = ALONE,
) -> list[float]:
    """Train one phase to its end (or until `stop()`); returns the losses of the steps run here.

    With several processes (`world`), each runs this loop on its share of every step's
    micro-batches; only the main one writes (see labdesk.train.distributed).
    """
    plan = StepPlan.build(items, phase, train)
    total = len(plan.steps)
    loss_file = phase_dir / "loss.jsonl"
    start = 0
    checkpoint = latest_checkpoint(phase_dir) if resume else None
    if checkpoint is not None:
        stepper.load_state(checkpoint)
        start = int(read_json_or_none(checkpoint / "step.json")["step"])
        if world.main:
            write_jsonl(loss_file, [r for r in read_jsonl(loss_file) if r["step"] <= start])
    elif world.main:
        with contextlib.suppress(FileNotFoundError):
            loss_file.unlink()
    reporter(
        Event(
            "train",
            "start",
            f"{phase.name}: {total} steps",
            step=phase.name,
            done=start,
            total=total,
        )
    )
    losses: list[float] = []
    began = time.perf_counter()
    tokens_seen = 0
    for index in range(start, total):
        refs = plan.steps[index]
        step_tokens, step_loss_tokens = plan.step_tokens(items, index)
        batches = [collate(items, plan.epochs[e][i]) for e, i in world.share(refs)]
        share = sum(stepper.micro(b, step_loss_tokens) for b in batches)
        # every rank must agree to stop (a Ctrl-C may reach them one by one)
        loss, stops = world.sum([share, float(stop is not None and stop())])
        stopping = stops > 0
        lr = lr_at(index, phase.learning_rate, phase.warmup_steps)
        stepper.step(lr)
        losses.append(loss)
        tokens_seen += step_tokens
        elapsed = time.perf_counter() - began
        done = index + 1
        rate = tokens_seen / elapsed if elapsed else 0.0
        metrics = {
            "loss": loss,
            "lr": lr,
            "tokens_per_s": rate,
            "eta_s": elapsed / (done - start) * (total - done),
            "memory_gb": stepper.memory_gb(),
            "epoch": refs[-1][0] + refs[-1][1] / max(1, len(plan.epochs[refs[-1][0]])),
        }
        if world.main:
            append_jsonl(loss_file, {"step": done, **metrics})
        reporter(
            Event("train", "progress", step=phase.name, done=done, total=total, metrics=metrics)
        )
        if done % train.checkpoint_every == 0 or done == total or stopping:
            # each rank's RNG (dropout masks) so that every rank resumes its own stream
            rng = rng_state() if world.alone else {"by_rank": world.gather(rng_state())}
            if world.main:
                _publish_checkpoint(stepper, phase_dir, done, rng)
        if stopping and done < total:
            raise Cancelled(
                f"training stopped after step {done} of {total} in {phase.name}; checkpoint saved",
                hint="run `labdesk train --resume` to continue where it stopped",
            )
    return losses


def publish_adapter(stepper: Stepper, dest: Path) -> None:
    """Write the adapter under a temporary name, then swap it into `dest` in one rename."""
    tmp = dest.parent / f".{dest.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    stepper.save_adapter(tmp)
    old = dest.parent / f".{dest.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
