"""Training on several processes started by torch's launcher (`torchrun`): data parallel LoRA.

Every process (rank) holds the whole student and the same adapter. Each optimizer step of the
phase's step plan is the same global batch as in one process: rank r takes micro-batches
r, r+size, r+2·size… of the step, scales its loss by the token count of the *whole* step, and the
gradients are summed over the ranks, so the sum is exactly the gradient one process computes on
the whole step. Every rank then takes the same optimizer step and stays in sync; rank 0 alone
writes the phase's files (checkpoints, loss.jsonl, adapters, done markers) and reports events.

Gradients are summed by an explicit all-reduce of the LoRA gradients rather than by torch's
DistributedDataParallel: token-budget packing gives ranks unequal numbers of micro-batches per
step (sometimes none), which DDP's per-backward hooks cannot take without every rank running
the same number of backward passes; the loss is already weighted by the global token count, so
the ranks' gradients must be summed, not averaged as DDP does; and LoRA gradients are a few MB,
one flat all-reduce per optimizer step, which costs nothing worth overlapping with backward.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from labdesk.errors import LabdeskError

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """The processes training together; `ALONE` is one process and every method a no-op."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"
    """Where this rank trains: "cpu", or "cuda:<local rank>" (one GPU per process)."""

    @property
    def alone(self) -> bool:
        return self.size == 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes files and reports."""
        return self.rank == 0

    def share(self, refs: Sequence[T]) -> list[T]:
        """This rank's micro-batches of one optimizer step (every one of them when alone)."""
        return list(refs[self.rank :: self.size])

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over the ranks."""
        if self.alone:
            return values
        import torch
        import torch.distributed as dist

        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return [float(x) for x in total.tolist()]

    def sum_grads(self, params: Sequence[torch.Tensor]) -> None:
        """Replace each parameter's gradient by the sum of all ranks' (absent ones count as 0)."""
        if self.alone:
            return
        import torch
        import torch.distributed as dist

        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for p, g in zip(params, grads, strict=True):
            p.grad = flat[offset : offset + g.numel()].view_as(g).to(g.dtype)
            offset += g.numel()

    def broadcast(self, params: Sequence[torch.Tensor]) -> None:
        """Copy rank 0's values into every rank's tensors."""
        if self.alone:
            return
        import torch
        import torch.distributed as dist

        with torch.no_grad():
            for p in params:
                dist.broadcast(p.data, src=0)

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value` (any picklable object), in rank order."""
        if self.alone:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        if not self.alone:
            import torch.distributed as dist

            dist.barrier()


ALONE = World()


@contextlib.contextmanager
def joined(environ: Mapping[str, str]) -> Iterator[World]:
    """The world `torchrun` started this process in (its variables in `environ`), else ALONE.

    Joins the process group (nccl on CUDA, one GPU per local rank; gloo on CPU) for the block.
    """
    size = int(environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        yield ALONE
        return
    import torch
    import torch.distributed as dist

    _die_with_launcher()
    local = int(environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        backend, device = "nccl", f"cuda:{local}"
    else:
        backend, device = "gloo", "cpu"
    dist.init_process_group(backend)
    try:
        yield World(dist.get_rank(), size, device)
    finally:
        dist.destroy_process_group()


def _die_with_launcher() -> None:
    """On Linux, have the kernel kill this worker when its launcher dies.

    torchrun starts each worker in a session of its own, so a launcher killed with SIGKILL (no
    chance to stop its workers) would leave them training on, writing checkpoints into a run
    that the next `labdesk train --resume` is about to use.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the launcher died before the line above
        os._exit(1)


class TrainingFailed(LabdeskError):
    """A worker process of a several-process training run failed."""


def launch(nproc: int, labdesk_args: list[str]) -> None:
    """Run torch's launcher (torchrun, in this process) on `nproc` copies of `labdesk ...` on
    this machine, and wait for them.

    Raises TrainingFailed naming the ranks that failed (each has printed its own error), and
    KeyboardInterrupt on Ctrl-C: torchrun has then passed the signal on to each worker once,
    and they have saved a checkpoint and stopped.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "labdesk", *labdesk_args])
    try:
        run(args)
    except ChildFailedError as exc:
        failed = ", ".join(
            f"rank {rank} ({_exit_status(f.exitcode)})" for rank, f in sorted(exc.failures.items())
        )
        raise TrainingFailed(
            f"training on {nproc} processes failed: {failed}",
            hint="each process's own message is above; `--resume` continues from the last "
            "checkpoint",
        ) from None
    except SignalException:
        raise KeyboardInterrupt from None


def _exit_status(code: int) -> str:
    if code < 0:
        import signal

        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


def worker_threads(nproc: int) -> str:
    """CPU threads for each of `nproc` workers on this machine (torchrun's default is 1)."""
    return str(max(1, (os.cpu_count() or 1) // nproc))
