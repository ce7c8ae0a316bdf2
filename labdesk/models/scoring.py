"""Log-likelihood scoring: the log-probability of each continuation token after its prompt.

Requests run batched over the engine's sequences like generation, with the same longest-prefix
reuse (many requests share a long prompt and differ in their continuation: the prompt is
computed once). A request's tokens are decoded up to the continuation's next-to-last token,
with logits from the prompt's last token on; what its sequence then holds stays in the KV
book for later calls to share, as after generation.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from labdesk.errors import Cancelled, ModelError
from labdesk.models.decoding import Decoding
from labdesk.models.kvcache import common_len
from labdesk.models.types import ScoreRequest, ScoreResult

if TYPE_CHECKING:
    import numpy.typing as npt

    from labdesk.models.engine import Engine

# Logit rows one decode call may return: each is a whole vocabulary of floats (0.6 MB for 152K
# tokens), kept by llama.cpp and read here.
MAX_LOGIT_ROWS = 128


@dataclass
class _Lane:
    index: int
    pos: int  # next position to decode
    logprobs: list[float] = field(default_factory=list)


class ScoreDecoder(Decoding):
    """Scores one set of requests; `run()` returns the results in request order."""

    def __init__(self, engine: Engine, requests: Sequence[ScoreRequest]) -> None:
        tokens, self.splits = [], []
        for request in requests:
            full = engine.prompt_tokens(request.prompt + request.continuation)
            prompt = engine.prompt_tokens(request.prompt)
            split = common_len(full, prompt, len(prompt))
            where = (request.prompt + request.continuation)[:60] + "…"
            if len(full) > engine.n_ctx:
                raise ModelError(
                    f"prompt and continuation hold {len(full)} tokens, more than the context "
                    f"of {engine.n_ctx}",
                    where=where,
                    hint="raise engine.n_ctx in the recipe, or shorten the text",
                )
            if split == 0 and len(full):
                raise ModelError(
                    "nothing precedes the continuation's first token to predict it from",
                    where=where,
                    hint="give a prompt (a model without BOS needs at least one prompt token)",
                )
            tokens.append(full)
            self.splits.append(split)
        # The prompt's last token is decoded again: its logits predict the first one scored.
        super().__init__(engine, tokens, [max(0, s - 1) for s in self.splits])

    def run(self, cancel: threading.Event | None = None) -> list[ScoreResult]:
        results: dict[int, ScoreResult] = {}
        pending: deque[int] = deque()
        for index, (tokens, split) in enumerate(zip(self.tokens, self.splits, strict=True)):
            if split == len(tokens):  # nothing to score
                results[index] = ScoreResult([], [], split)
            else:
                pending.append(index)
        free = list(range(self.engine.parallel - 1, -1, -1))
        lanes: dict[int, _Lane] = {}  # seq id -> live request
        if pending:
            self.load_prefix()
        while pending or lanes:
            if cancel is not None and cancel.is_set():
                raise Cancelled("scoring stopped")
            while free and pending:
                index = pending.popleft()
                seq, kept = self.take_slot(free, index)
                lanes[seq] = _Lane(index, kept)
            placed, targets = self._fill(lanes)
            self.decode()
            logprobs = log_softmax_at(self.logits(), targets) if len(targets) else []
            taken = 0
            for seq, rows in placed:
                lane = lanes[seq]
                tokens, split = self.tokens[lane.index], self.splits[lane.index]
                lane.logprobs += logprobs[taken : taken + rows]
                taken += rows
                if lane.pos == len(tokens) - 1:
                    results[lane.index] = ScoreResult(tokens[split:].tolist(), lane.logprobs, split)
                    del lanes[seq]
                    free.append(seq)
        return [results[i] for i in range(len(self.tokens))]

    def _fill(self, lanes: dict[int, _Lane]) -> tuple[list[tuple[int, int]], npt.NDArray[np.int32]]:
        """Each lane's next chunk, in sequence-id order (see batch.py), with at most
        MAX_LOGIT_ROWS rows of logits in all. Returns (sequence, rows of logits) per lane
        placed, and the tokens those rows predict, in batch order."""
        self.batch.clear()
        budget = MAX_LOGIT_ROWS
        placed, targets = [], []
        for seq, lane in sorted(lanes.items()):
            tokens, split = self.tokens[lane.index], self.splits[lane.index]
            start = lane.pos
            first_scored = max(start, split - 1)
            stop = min(len(tokens) - 1, start + self.batch.room, first_scored + budget)
            if stop <= start:
                continue
            self.batch.add(seq, tokens[start:stop], start, np.arange(start, stop) >= split - 1)
            rows = max(0, stop - first_scored)
            budget -= rows
            targets.append(tokens[first_scored + 1 : first_scored + 1 + rows])
            placed.append((seq, rows))
            lane.pos = stop
        return placed, np.concatenate(targets) if targets else np.zeros(0, dtype=np.int32)


def log_softmax_at(logits: npt.NDArray[np.float32], targets: npt.NDArray[np.int32]) -> list[float]:
    """log softmax(logits[i])[targets[i]] for every row i, summed in float64."""
    top = logits.max(axis=1)
    total = np.exp(logits - top[:, None]).sum(axis=1, dtype=np.float64)
    picked = logits[np.arange(len(targets)), targets].astype(np.float64)
    return (picked - top - np.log(total)).tolist()
