"""Sampling every slot of a step together: greedy or seeded top-p, a grammar where asked.

The logits of all slots come back from llama.cpp as one (slots × vocabulary) matrix, and the
first choice of every slot is drawn from it in a few numpy passes for all of them at once,
without llama.cpp building and sorting a candidate array per slot (~1.3 ms with a 32K
vocabulary): greedy slots take the argmax; top-p slots draw from their softmax by block sums,
redrawing while the token falls outside its nucleus, which samples the nucleus exactly with no
sort (`draw_top_p_rows`).

A grammar is checked against the chosen token only, and applied to the whole vocabulary only
when that token is refused (llama.cpp's own server does the same): running the grammar over
every candidate costs ~3 ms per token with a 32K vocabulary. The result is the same as masking
first — greedy picks the same token; drawing again from the masked distribution after a refusal
gives exactly the masked distribution. After a greedy refusal the best candidates are tried in
order, one grammar check each (~5 us); the first allowed is the argmax of the masked vocabulary.
Only when none of the top few is allowed (one try per 512 tokens of vocabulary, 4 to 64: past
that the full pass is cheaper), or a drawn token is refused, does the grammar run over
everything. Slots without a grammar never leave numpy.
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from labdesk.errors import ModelError
from labdesk.models.grammar import pattern_to_gbnf, schema_to_gbnf
from labdesk.models.types import GenRequest

if TYPE_CHECKING:
    from labdesk.models.engine import Engine

Logits = npt.NDArray[np.float32]

# numpy's view of llama.cpp's `llama_token_data` array (id, logit, p).
_TOKEN_DATA = [("id", "<i4"), ("logit", "<f4"), ("p", "<f4")]
_GREEDY_TRIES = (4, 64)
# Vocabulary positions summed together when drawing: the draw finds its block from the block
# sums, then its token inside the block, instead of a running sum over the whole vocabulary.
_BLOCK = 1024


def request_grammar(request: GenRequest) -> str | None:
    if request.schema is not None and request.pattern is not None:
        raise ModelError("a request may carry a schema or a pattern, not both")
    if request.schema is not None:
        return schema_to_gbnf(request.schema)
    if request.pattern is not None:
        return pattern_to_gbnf(request.pattern)
    return None


def draw_top_p(logits: Logits, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """A token from softmax(logits / temperature) cut to its top-p nucleus (one row of
    `draw_top_p_rows`)."""
    return int(draw_top_p_rows(logits[None, :], [temperature], [top_p], [rng])[0])


def draw_top_p_rows(
    logits: Logits,
    temperatures: Sequence[float],
    top_ps: Sequence[float],
    rngs: Sequence[np.random.Generator],
) -> npt.NDArray[np.int64]:
    """One token per row from softmax(row / temperature) cut to the row's top-p nucleus.

    The nucleus is the smallest set of most likely tokens holding `top_p` of the mass; a token
    is in it when the tokens more likely than it hold less than `top_p`. Drawing from the whole
    distribution until the token is in the nucleus gives the renormalized nucleus exactly, with
    at most 1 / top_p draws expected and no sort. Each row draws from its own generator, one
    uniform number per try, so a row's tokens do not depend on the other rows.
    """
    n_rows, n_vocab = logits.shape
    weights = logits - logits.max(axis=1, keepdims=True)
    weights *= np.reciprocal(np.asarray(temperatures, dtype=np.float32))[:, None]
    np.exp(weights, out=weights)  # the most likely token weighs 1
    starts = np.arange(0, n_vocab, _BLOCK)
    block_ends = np.cumsum(np.add.reduceat(weights, starts, axis=1), axis=1, dtype=np.float64)
    totals = block_ends[:, -1]
    tokens = np.zeros(n_rows, dtype=np.int64)
    for row in range(n_rows):
        w, ends, total = weights[row], block_ends[row], totals[row]
        while True:
            token = _draw(w, ends, rngs[row].random() * total)
            picked = w[token]
            # the most likely token (weight 1) is always in; else weigh the tokens above it
            if top_ps[row] >= 1.0 or picked >= 1.0:
                break
            if w[w > picked].sum(dtype=np.float64) < top_ps[row] * total:
                break
        tokens[row] = token
    return tokens


def _draw(weights: Logits, block_ends: npt.NDArray[np.float64], target: float) -> int:
    """The token where the running sum of `weights` passes `target`."""
    block = min(int(np.searchsorted(block_ends, target, side="right")), len(block_ends) - 1)
    start = block * _BLOCK
    inside = target - (block_ends[block - 1] if block else 0.0)
    running = np.cumsum(weights[start : start + _BLOCK], dtype=np.float64)
    offset = min(int(np.searchsorted(running, inside, side="right")), len(running) - 1)
    return start + offset


class Sampler:
    """How one request samples: greedy or seeded top-p, and its grammar (llama.cpp's grammar
    sampler, the one object to free with `close()`)."""

    def __init__(self, engine: Engine, request: GenRequest, grammar: str | None) -> None:
        """`grammar` is `request_grammar(request)` (GBNF), built by the caller."""
        import llama_cpp

        self._engine = engine
        self.greedy = request.temperature <= 0.0
        self.temperature = request.temperature
        self.top_p = request.top_p
        self.rng = np.random.default_rng(request.seed)
        self.grammar: Any = None
        self._one: Any = None  # the one-candidate array `_allowed` reuses
        self._one_array: Any = None
        if grammar is not None:
            self.grammar = llama_cpp.llama_sampler_init_grammar(
                engine.vocab, grammar.encode("utf-8"), b"root"
            )
            if not self.grammar:
                raise ModelError("llama.cpp rejected the output grammar", where=grammar[:200])

    def constrain(self, token: int, logits: Logits) -> int:
        """The token to take after `token` was drawn from `logits`: itself where the grammar
        allows it, else a choice from the vocabulary the grammar allows; accepted into it."""
        import llama_cpp

        if not self._allowed(token):
            token = self._greedy_masked(logits) if self.greedy else self._draw_masked(logits)
        llama_cpp.llama_sampler_accept(self.grammar, token)
        return token

    def _greedy_masked(self, logits: Logits) -> int:
        """The highest-logit token the grammar allows (lowest id among equals)."""
        low, high = _GREEDY_TRIES
        tries = min(high, max(low, len(logits) // 512), len(logits))
        top = np.argpartition(logits, -tries)[-tries:]
        for token in top[np.lexsort((top, -logits[top]))]:
            if self._allowed(int(token)):
                return int(token)
        return int(self._masked(logits).argmax())

    def _draw_masked(self, logits: Logits) -> int:
        return draw_top_p(self._masked(logits), self.temperature, self.top_p, self.rng)

    def _allowed(self, token: int) -> bool:
        """Whether the grammar allows `token` next (one candidate through it)."""
        import llama_cpp

        if self._one is None:  # made once: this runs for every token of a constrained slot
            self._one = llama_cpp.llama_token_data(0, 1.0, 0.0)
            self._one_array = llama_cpp.llama_token_data_array(
                ctypes.pointer(self._one), 1, -1, False
            )
        self._one.id, self._one.logit = token, 1.0
        self._one_array.size, self._one_array.selected = 1, -1
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(self._one_array))
        return not math.isinf(self._one.logit)

    def _masked(self, logits: Logits) -> Logits:
        """`logits` with -inf wherever the grammar refuses the token (the full pass)."""
        import llama_cpp

        n_vocab = len(logits)
        data = (llama_cpp.llama_token_data * n_vocab)()
        view = np.frombuffer(memoryview(data), dtype=_TOKEN_DATA)
        view["id"] = np.arange(n_vocab, dtype=np.int32)
        view["logit"] = logits
        view["p"] = 0.0
        candidates = llama_cpp.llama_token_data_array(data, n_vocab, -1, False)
        llama_cpp.llama_sampler_apply(self.grammar, ctypes.byref(candidates))
        if not np.isfinite(view["logit"]).any():
            raise ModelError("the grammar allows no token here", where=str(self._engine.path))
        return view["logit"].copy()

    def close(self) -> None:
        import llama_cpp

        if self.grammar is not None:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None


def sample_rows(logits: Logits, samplers: Sequence[Sampler]) -> list[int]:
    """The next token of every slot: row i of `logits` belongs to `samplers[i]`."""
    greedy = [i for i, s in enumerate(samplers) if s.greedy]
    drawn = [i for i, s in enumerate(samplers) if not s.greedy]
    tokens = np.zeros(len(samplers), dtype=np.int64)
    if len(greedy) == len(samplers):
        tokens[:] = logits.argmax(axis=1)
    elif greedy:
        tokens[greedy] = logits[greedy].argmax(axis=1)
    if drawn:
        rows = logits if len(drawn) == len(samplers) else logits[drawn]
        picked = [samplers[i] for i in drawn]
        tokens[drawn] = draw_top_p_rows(
            rows,
            [s.temperature for s in picked],
            [s.top_p for s in picked],
            [s.rng for s in picked],
        )
    out = tokens.tolist()
    for i, sampler in enumerate(samplers):
        if sampler.grammar is not None:
            out[i] = sampler.constrain(out[i], logits[i])
    return out
