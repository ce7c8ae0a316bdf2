"""What generation and scoring share: requests spread over the engine's sequences, each
starting from the longest prefix of its tokens any sequence holds, and `llama_decode` calls that
advance many sequences at once.

The prefix every request of a call shares is computed once, first, into a spare sequence, so
requests starting together need not each compute it (see kvcache.py for the bookkeeping).

A request's numbers depend on its own tokens (and the prefix it starts from), never on what is
decoded beside it. llama.cpp computes a call over several sequences in micro-batches that take
the same number of tokens from each, so a chunk next to a shorter one is cut where its
neighbour ends, and how a sequence's tokens are cut changes its numbers: attention over one
query token takes another kernel than over several, and flash attention sums block by block.
On SmolLM2 Q4_1 a logit moved by up to 1.2, and a resumed run, which skips the requests it has
cached, drew other replies than an uninterrupted one. So each sequence is cut into chunks by its
own positions alone, and a call holds chunks of one length (`equal_length_calls`), which
llama.cpp computes whole, bit for bit as alone.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from labdesk.errors import ModelError
from labdesk.models.kvcache import Tokens, common_len
from labdesk.models.tokenbatch import TokenBatch

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from labdesk.models.engine import Engine

# A shared prefix shorter than this is not worth the extra decode call.
MIN_SHARED_PREFIX = 16


def equal_length_calls(
    lengths: Sequence[int], rows: Sequence[int], *, tokens: int, logits: int
) -> list[list[int]]:
    """Chunks grouped into decode calls: each chunk i has `lengths[i]` tokens and `rows[i]` rows
    of logits; every call's chunks have one length, and it holds at most `tokens` tokens and
    `logits` rows. Returns each call's chunk indices, calls in the order of their first chunk."""
    calls: list[list[int]] = []
    room: list[tuple[int, int]] = []  # per call: tokens and rows it can still take
    filling: dict[int, int] = {}  # chunk length -> the call taking chunks of that length
    for index, (length, row) in enumerate(zip(lengths, rows, strict=True)):
        at = filling.get(length)
        if at is None or room[at][0] < length or room[at][1] < row:
            at = filling[length] = len(calls)
            calls.append([])
            room.append((tokens, logits))
        calls[at].append(index)
        room[at] = (room[at][0] - length, room[at][1] - row)
    return calls


class Decoding:
    """One call's requests, as token arrays; `keep[i]` is how many leading tokens of request
    i may come from cells already computed (the rest are decoded, with the logits needed)."""

    def __init__(self, engine: Engine, tokens: list[Tokens], keep: list[int]) -> None:
        self.engine = engine
        self.kv = engine.kv
        self.tokens = tokens
        self.keep = keep
        self.prefix_seq = engine.parallel  # the spare sequence id
        self.prefix_len = self._shared_prefix_len() if engine.reuse_prefix else 0
        self.batch = TokenBatch(max(512, engine.parallel), self.kv.n_seq)
        self._logits_views: dict[tuple[int, int], npt.NDArray[np.float32]] = {}

    def _shared_prefix_len(self) -> int:
        """How much of the first request's tokens to compute up front for the others: the
        length that saves the most computing (every request shares it, in a batch of one
        step's requests; most of them, where a few stand apart), if it is worth it."""
        import numpy as np

        if len(self.tokens) < 2:
            return 0
        first = self.tokens[0]
        shared = np.sort(
            [
                common_len(t, first, min(k, self.keep[0]))
                for t, k in zip(self.tokens, self.keep, strict=True)
            ]
        )[::-1]
        # shared[i] tokens are held by i + 1 requests: computing them once saves i copies
        saved = shared * np.arange(len(shared))
        n = int(shared[int(saved.argmax())])
        return n if n >= MIN_SHARED_PREFIX else 0

    def load_prefix(self) -> None:
        """Make the spare sequence hold the prefix all requests share, computing what no
        sequence holds yet (a leaf's next step often finds its instructions there already)."""
        if not self.prefix_len:
            return
        new = self.tokens[0][: self.prefix_len]
        done = self.kv.share(self.prefix_seq, new, len(new))
        self.kv.stats.prompt_computed += len(new) - done
        while done < len(new):
            chunk = new[done : done + self.batch.capacity]
            self.batch.clear()
            self.batch.add(self.prefix_seq, chunk, done, False)
            self.decode()
            done += len(chunk)

    def take_slot(self, free: list[int], index: int) -> tuple[int, int]:
        """A free sequence for request `index`, holding the longest reusable prefix of its
        tokens: (sequence id, tokens kept)."""
        tokens, keep = self.tokens[index], self.keep[index]
        seq = self.kv.best_free(free, tokens, keep)
        free.remove(seq)
        kept = self.kv.share(seq, tokens, keep)
        self.kv.stats.prompt_reused += kept
        self.kv.stats.prompt_computed += len(tokens) - kept
        return seq, kept

    def decode(self) -> None:
        """Run the batch; on success its tokens join their sequences' cells in the book."""
        import llama_cpp

        engine, batch = self.engine, self.batch
        stats = self.kv.stats
        started, cpu = time.perf_counter(), time.thread_time()
        status = llama_cpp.llama_decode(engine.ctx, batch.ready())
        stats.decode_seconds += time.perf_counter() - started
        stats.decode_cpu_seconds += time.thread_time() - cpu
        stats.decode_calls += 1
        if status != 0:
            engine.forget()
            raise ModelError(
                f"llama.cpp decode failed (status {status})",
                where=str(engine.path),
                hint="lower engine.parallel or raise engine.n_ctx",
            )
        self.kv.extend(batch.seq[: batch.n], batch.pos[: batch.n], batch.token[: batch.n])

    def logits(self) -> npt.NDArray[np.float32]:
        """The logits the last batch asked for, one row per marked token in batch order."""
        import llama_cpp
        import numpy as np

        pointer = llama_cpp.llama_get_logits(self.engine.ctx)
        key = (ctypes.addressof(pointer.contents), self.batch.outputs)
        view = self._logits_views.get(key)
        if view is None:  # llama.cpp keeps its output buffer: the same views serve every step
            shape = (self.batch.outputs, self.engine.n_vocab)
            view = self._logits_views[key] = np.ctypeslib.as_array(pointer, shape=shape)
        return view
