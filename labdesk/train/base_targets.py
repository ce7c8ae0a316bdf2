"""The base model's soft targets for self-replay samples, computed once per run.

With `train.self_replay_targets: distribution` every self-replay sample learns the base's
next-token distribution along its answer (`labdesk.train.replay`). The phases replay many of
the same samples (the demo: 561 in its three phases, 374 different), and a resumed phase needs
them again, so each sample's targets are kept in a small file under the run's train folder,
keyed by the model and the sample's tokens, and computed in batches. The run's log shows the
cost: in the demo, 25 s in the first phase for 365 samples (between its "bf16" and
"self-replay" lines), and the later phases find all of theirs already computed. Processes
training together (`labdesk train --nproc N`) each compute a share and read the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from labdesk.events import Event, Reporter, null_reporter
from labdesk.fileio import atomic_writer
from labdesk.train.data import Tokenized
from labdesk.train.distributed import ALONE, World

BaseLogprobs = Callable[[list[Tokenized]], Iterator[tuple[int, np.ndarray, np.ndarray]]]
"""From a backend, for each sample in any order: its index, and at its `predicting` positions
the ids of the base's `TOP_K` likeliest next tokens [n, TOP_K] and their log-probabilities.
The backend picks them with its own top-k: numpy's argpartition took 145 ms a sample on
SmolLM2's bf16 log-probabilities (34 of the 64 s the targets took), torch.topk a few."""
Targets = tuple[np.ndarray, np.ndarray]
"""[n, TOP_K] token ids and [n, TOP_K + 1] log-probabilities (see `data.SoftTargets`)."""


def model_fingerprint(model_dir: Path) -> str:
    """Names, sizes and modification times of the model folder's files: changes when it does."""
    files = sorted(p for p in model_dir.iterdir() if p.is_file())
    return hashlib.sha256(
        "\n".join(f"{p.name} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in files).encode()
    ).hexdigest()[:16]


def with_rest(top_ids: np.ndarray, top_logp: np.ndarray) -> Targets:
    """The base's top tokens, with one more bin last: the log of the rest of its mass."""
    mass = np.exp(top_logp.astype(np.float64)).sum(axis=-1)
    rest = np.log(np.clip(1.0 - mass, 1e-12, None))
    return top_ids, np.concatenate([top_logp, rest[:, None]], axis=-1).astype(np.float32)


class TargetCache:
    """One `.npz` per sample in `folder`, named by a hash of `model` and the sample's tokens."""

    def __init__(self, folder: Path, model: str) -> None:
        self.folder = folder
        self.model = model

    def _path(self, item: Tokenized) -> Path:
        key = hashlib.sha256(
            f"{self.model}|{item.input_ids}|{item.predicting}".encode()
        ).hexdigest()[:24]
        return self.folder / f"{key}.npz"

    def get(self, item: Tokenized) -> Targets | None:
        path = self._path(item)
        if not path.is_file():
            return None
        try:
            with np.load(path) as saved:
                return saved["ids"], saved["logp"]
        except (OSError, ValueError, KeyError):  # torn or foreign: computed again
            return None

    def put(self, item: Tokenized, targets: Targets) -> None:
        with atomic_writer(self._path(item), "wb") as handle:
            np.savez(handle, ids=targets[0], logp=targets[1])


def with_base_targets(
    items: list[Tokenized],
    targets: Literal["distribution", "answers"],
    base_logprobs: BaseLogprobs,
    reporter: Reporter = null_reporter,
    phase: str | None = None,
    cache: TargetCache | None = None,
    world: World = ALONE,
) -> list[Tokenized]:
    """The self-replay samples with soft targets, when `train.self_replay_targets` asks for the
    base's distribution; other samples unchanged."""
    if targets != "distribution" or not any(t.distill for t in items):
        return items
    own = [i for i, t in enumerate(items) if t.distill]
    found = {i: cache.get(items[i]) if cache else None for i in own}
    missing = [i for i in own if found[i] is None]

    def compute(todo: list[int]) -> None:
        for n, top_ids, top_logp in base_logprobs([items[i] for i in todo]) if todo else ():
            found[todo[n]] = made = with_rest(top_ids, top_logp)
            if cache:
                cache.put(items[todo[n]], made)

    if cache and not world.alone:
        # Several processes on one machine: each computes and writes its share of the cache,
        # then reads the others' (each rank computing all of them cost size times the work).
        world.barrier()  # all have read the cache before any writes: the same `missing` on each
        compute(world.share(missing))
        world.barrier()
        found.update({i: cache.get(items[i]) for i in missing if found[i] is None})
    compute([i for i in missing if found[i] is None])  # alone, or a share another could not write
    out = list(items)
    for i in own:
        ids, logp = found[i]  # type: ignore[misc]
        out[i] = items[i].with_soft(ids, logp)
    tokens = sum(len(items[i].predicting) for i in own)
    reused = f", {len(own) - len(missing)} of them already computed" if missing != own else ""
    message = (
        f"self-replay learns the base model's distribution at {tokens} tokens of {len(own)} "
        f"samples{reused} (train.self_replay_targets)"
    )
    reporter(Event("train", "message", message, step=phase))
    return out
