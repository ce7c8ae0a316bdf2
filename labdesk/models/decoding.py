"""What generation and scoring share: requests spread over the engine's sequences, each
starting from the longest prefix of its tokens any sequence holds, and one `llama_decode` call
per step for every sequence at once.

The prefix every request of a call shares is computed once, first, into a spare sequence, so
requests starting together need not each compute it (see kvcache.py for the bookkeeping).
"""

from __future__ import annotations

import time
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
        started = time.perf_counter()
        status = llama_cpp.llama_decode(engine.ctx, batch.ready())
        self.kv.stats.decode_seconds += time.perf_counter() - started
        self.kv.stats.decode_calls += 1
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
        shape = (self.batch.outputs, self.engine.n_vocab)
        return np.ctypeslib.as_array(pointer, shape=shape)
