"""A `llama_batch` whose arrays are numpy arrays, filled a whole run of tokens at a time.

llama-cpp-python's `llama_batch_init` gives ctypes arrays that are filled one field of one row
per Python call (five calls a token); here the same struct points into numpy arrays, so a
prompt chunk or every slot's next token is one slice assignment per field. Each row's
`seq_id` pointer points into a fixed array holding every sequence id, so a row joins a
sequence by taking that entry's address.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import numpy.typing as npt


class TokenBatch:
    """Up to `capacity` tokens for `llama_decode`, for sequences 0..n_seq-1."""

    def __init__(self, capacity: int, n_seq: int) -> None:
        import llama_cpp

        self.capacity = capacity
        self.token = np.zeros(capacity, dtype=np.int32)
        self.pos = np.zeros(capacity, dtype=np.int32)
        self.seq = np.zeros(capacity, dtype=np.int32)
        self.logits = np.zeros(capacity, dtype=np.int8)
        self._n_seq_id = np.ones(capacity, dtype=np.int32)
        self._seq_ids = np.arange(n_seq, dtype=np.int32)
        # the address of each sequence id's entry, what a row's seq_id pointer holds
        self._seq_addresses = self._seq_ids.ctypes.data + 4 * np.arange(n_seq, dtype=np.uintp)
        self._seq_ptrs = np.zeros(capacity, dtype=np.uintp)
        self.n = 0
        self.outputs = 0
        self.struct = llama_cpp.llama_batch()
        self.struct.token = _pointer(self.token, llama_cpp.llama_token)
        self.struct.pos = _pointer(self.pos, llama_cpp.llama_pos)
        self.struct.n_seq_id = _pointer(self._n_seq_id, ctypes.c_int32)
        self.struct.seq_id = _pointer(self._seq_ptrs, ctypes.POINTER(llama_cpp.llama_seq_id))
        self.struct.logits = _pointer(self.logits, ctypes.c_int8)

    def clear(self) -> None:
        self.n = 0
        self.outputs = 0

    def add(self, seq: int, tokens: npt.ArrayLike, start: int, logits: npt.ArrayLike) -> int:
        """Append `tokens` of sequence `seq` at positions start, start+1, …; `logits` (a bool
        or one per token) marks the rows whose logits llama.cpp returns. Returns the first
        row's index among the returned logits (rows come back in batch order)."""
        tokens = np.asarray(tokens, dtype=np.int32)
        n, end = len(tokens), self.n + len(tokens)
        self.token[self.n : end] = tokens
        self.pos[self.n : end] = np.arange(start, start + n, dtype=np.int32)
        self.seq[self.n : end] = seq
        self.logits[self.n : end] = logits
        first = self.outputs
        self.outputs += int(np.count_nonzero(self.logits[self.n : end]))
        self.n = end
        return first

    def add_each(self, seqs: npt.ArrayLike, tokens: npt.ArrayLike, positions: npt.ArrayLike) -> int:
        """One token for each of several sequences, every row with logits; returns the first
        row's index among the returned logits."""
        tokens = np.asarray(tokens, dtype=np.int32)
        end = self.n + len(tokens)
        self.token[self.n : end] = tokens
        self.pos[self.n : end] = positions
        self.seq[self.n : end] = seqs
        self.logits[self.n : end] = 1
        first = self.outputs
        self.outputs += len(tokens)
        self.n = end
        return first

    def ready(self) -> Any:
        """The struct for `llama_decode`, its seq-id pointers set for the rows added."""
        self._seq_ptrs[: self.n] = self._seq_addresses[self.seq[: self.n]]
        self.struct.n_tokens = self.n
        return self.struct


def _pointer(array: npt.NDArray[Any], ctype: Any) -> Any:
    return array.ctypes.data_as(ctypes.POINTER(ctype))
