"""Log-likelihood scoring: the log-probability of each continuation token after its prompt.

Requests run batched over the engine's sequences like generation, with the same longest-prefix
reuse (many requests share a long prompt and differ in their continuation: the prompt is
computed once) and the same rule for cutting them into calls (decoding.py): a request's scores
do not depend on what is scored beside it. A request's tokens are decoded up to the
continuation's next-to-last token, with logits from the prompt's last token on; what its
sequence then holds stays in the KV book for later calls to share, as after generation.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from labdesk.errors import Cancelled, ModelError
from labdesk.models.decoding import Decoding, equal_length_calls
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


@dataclass(frozen=True)
class _Chunk:
    """Tokens start..stop-1 of request `index` on sequence `seq`, with logits from
    `first_scored` on."""

    seq: int
    index: int
    start: int
    stop: int
    first_scored: int

    @property
    def rows(self) -> int:
        return max(0, self.stop - self.first_scored)


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
            while free and pending:
                index = pending.popleft()
                seq, kept = self.take_slot(free, index)
                lanes[seq] = _Lane(index, kept)
            for call in self._calls(lanes):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("scoring stopped")
                targets = self._fill(call)
                self.decode()
                logprobs = log_softmax_at(self.logits(), targets) if len(targets) else []
                taken = 0
                for chunk in call:
                    lane = lanes[chunk.seq]
                    lane.logprobs += logprobs[taken : taken + chunk.rows]
                    taken += chunk.rows
                    lane.pos = chunk.stop
                    tokens, split = self.tokens[lane.index], self.splits[lane.index]
                    if lane.pos == len(tokens) - 1:
                        results[lane.index] = ScoreResult(
                            tokens[split:].tolist(), lane.logprobs, split
                        )
                        del lanes[chunk.seq]
                        free.append(chunk.seq)
        return [results[i] for i in range(len(self.tokens))]

    def _calls(self, lanes: dict[int, _Lane]) -> list[list[_Chunk]]:
        """This step's decode calls: every lane's next chunk, in sequence-id order (see
        batch.py), grouped into calls of one chunk length and at most MAX_LOGIT_ROWS rows."""
        chunks = [self._next_chunk(seq, lane) for seq, lane in sorted(lanes.items())]
        calls = equal_length_calls(
            [c.stop - c.start for c in chunks],
            [c.rows for c in chunks],
            tokens=self.batch.capacity,
            logits=MAX_LOGIT_ROWS,
        )
        return [[chunks[i] for i in call] for call in calls]

    def _next_chunk(self, seq: int, lane: _Lane) -> _Chunk:
        """The lane's next tokens to decode, cut by its own positions alone: at most a batch's
        worth, with logits from the prompt's last token on, at most MAX_LOGIT_ROWS of them."""
        tokens, split = self.tokens[lane.index], self.splits[lane.index]
        start = lane.pos
        first_scored = max(start, split - 1)
        stop = min(len(tokens) - 1, start + self.batch.capacity, first_scored + MAX_LOGIT_ROWS)
        return _Chunk(seq, lane.index, start, stop, first_scored)

    def _fill(self, call: list[_Chunk]) -> npt.NDArray[np.int32]:
        """Put the call's chunks in the batch; returns the tokens their rows of logits predict,
        in batch order."""
        self.batch.clear()
        targets = []
        for chunk in call:
            tokens, split = self.tokens[chunk.index], self.splits[chunk.index]
            start, stop = chunk.start, chunk.stop
            self.batch.add(
                chunk.seq, tokens[start:stop], start, np.arange(start, stop) >= split - 1
            )
            targets.append(tokens[chunk.first_scored + 1 : chunk.first_scored + 1 + chunk.rows])
        return np.concatenate(targets) if targets else np.zeros(0, dtype=np.int32)


def log_softmax_at(logits: npt.NDArray[np.float32], targets: npt.NDArray[np.int32]) -> list[float]:
    """log softmax(logits[i])[targets[i]] for every row i, summed in float64."""
    top = logits.max(axis=1)
    total = np.exp(logits - top[:, None]).sum(axis=1, dtype=np.float64)
    picked = logits[np.arange(len(targets)), targets].astype(np.float64)
    return (picked - top - np.log(total)).tolist()
