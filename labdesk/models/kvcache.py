"""The engine's KV bookkeeping, in one owner: which tokens every sequence's cells hold.

Nothing computed is thrown away while it may serve again: a sequence keeps its cells after its
request ends, and this book remembers their tokens. A new request starts from the longest
prefix of its tokens that any sequence holds, copied into its own sequence with
`llama_memory_seq_cp` (each sequence has its own KV stream, see engine.py), so only the rest
is computed. Every change to the cells goes through here, so the book and llama.cpp's memory
cannot drift apart.

The tokens sit in one (sequences × n_ctx) matrix, cells past a sequence's length hold -1 (no
token id), so the longest-prefix search over every sequence is a single numpy comparison.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Tokens = npt.NDArray[np.int32]


@dataclass
class DecodeStats:
    """Since loading: prompt tokens computed vs found already in some sequence's cells, and
    the decode calls with the seconds llama.cpp spent in them (the rest of a call's time is
    labdesk's own: batching, sampling, grammar, Python)."""

    prompt_computed: int = 0
    prompt_reused: int = 0
    decode_calls: int = 0
    decode_seconds: float = 0.0


def as_tokens(tokens: Iterable[int] | Tokens) -> Tokens:
    return np.asarray(tokens if isinstance(tokens, np.ndarray) else list(tokens), dtype=np.int32)


def common_len(a: Tokens, b: Tokens, limit: int) -> int:
    """How many leading tokens `a` and `b` share, at most `limit`."""
    n = min(limit, len(a), len(b))
    if n <= 0:
        return 0
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


class KVCache:
    """The token book of a context's sequences and the llama.cpp calls that change their cells."""

    def __init__(self, ctx: Any, n_seq: int, n_ctx: int, *, reuse: bool) -> None:
        import llama_cpp

        self._mem = llama_cpp.llama_get_memory(ctx)
        self.reuse = reuse
        self._tokens = np.full((n_seq, n_ctx), -1, dtype=np.int32)
        self._len = np.zeros(n_seq, dtype=np.int64)
        self.stats = DecodeStats()

    @property
    def n_seq(self) -> int:
        return len(self._len)

    def held(self, seq: int) -> Tokens:
        """The tokens sequence `seq` holds (a view: do not change it)."""
        return self._tokens[seq, : self._len[seq]]

    def held_lists(self) -> list[list[int]]:
        return [self.held(seq).tolist() for seq in range(self.n_seq)]

    def matches(self, tokens: Tokens, limit: int) -> npt.NDArray[np.int64]:
        """For every sequence, how many leading tokens of `tokens` (at most `limit`) it holds."""
        n = min(limit, len(tokens), self._tokens.shape[1])
        if n <= 0:
            return np.zeros(self.n_seq, dtype=np.int64)
        same = self._tokens[:, :n] == tokens[:n]  # cells past a sequence's end hold -1: no match
        return np.where(same.all(axis=1), n, same.argmin(axis=1)).astype(np.int64)

    def best_free(self, free: list[int], tokens: Tokens, limit: int) -> int:
        """Of the `free` sequences, the one holding the longest prefix of `tokens` (at most
        `limit`; the first in `free` among equals)."""
        return free[int(self.matches(tokens, limit)[free].argmax())]

    def share(self, seq: int, tokens: Tokens, limit: int) -> int:
        """Give `seq` the longest prefix of `tokens` (at most `limit`) any sequence holds.

        Returns its length; the sequence keeps nothing else. With reuse off it keeps nothing.
        """
        import llama_cpp

        best, source = 0, seq
        if self.reuse:
            found = self.matches(tokens, limit)
            # its own cells first: keeping is cheaper than copying a whole stream
            if found[seq] < found.max():
                source = int(found.argmax())
            best = int(found[source])
        if source != seq:  # llama.cpp copies between streams only whole
            llama_cpp.llama_memory_seq_cp(self._mem, source, seq, -1, -1)
            self._tokens[seq] = self._tokens[source]
            self._len[seq] = self._len[source]
        llama_cpp.llama_memory_seq_rm(self._mem, seq, best, -1)
        self._tokens[seq, best : self._len[seq]] = -1
        self._len[seq] = best
        return best

    def extend(
        self, seqs: npt.NDArray[np.int32], pos: npt.NDArray[np.int32], tokens: Tokens
    ) -> None:
        """Record the rows of a batch just decoded: token `tokens[i]` at position `pos[i]` of
        sequence `seqs[i]`, each continuing what its sequence holds."""
        self._tokens[seqs, pos] = tokens
        np.maximum.at(self._len, seqs, pos.astype(np.int64) + 1)

    def clear(self) -> None:
        """Drop every sequence's cells."""
        import llama_cpp

        llama_cpp.llama_memory_clear(self._mem, True)
        self._tokens.fill(-1)
        self._len.fill(0)
