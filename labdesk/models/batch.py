"""Continuous batching on llama.cpp's low-level API.

Up to `parallel` sequences live in one context, each with its own sequence id and sampler
chain; every `llama_decode` call advances all of them by one token (and feeds prompt chunks of
newly started ones). A finished sequence frees its slot for the next request at once.

Nothing computed is thrown away while it may serve again: each sequence keeps its KV cells
after its request ends, and the engine remembers which tokens every sequence holds
(`Engine.kv_tokens`). A new request starts from the longest prefix of its prompt that any
sequence holds — the shared instructions of a leaf's step, the previous request, a chat's
earlier turns — copied into its slot with `llama_memory_seq_cp` (each sequence has its own
KV stream, see engine.py), so only the rest is computed. The prompt prefix every
request of a call shares is computed once, first, into a spare sequence, so requests starting
together need not each compute it.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from labdesk.errors import ModelError
from labdesk.models.sampling import Sampler, request_grammar
from labdesk.models.types import FinishReason, GenRequest, GenResult

if TYPE_CHECKING:
    from labdesk.models.engine import Engine

# A shared prefix shorter than this is not worth the extra decode call.
MIN_SHARED_PREFIX = 16


@dataclass
class _Slot:
    index: int  # request index
    seq: int  # llama.cpp sequence id
    request: GenRequest
    sampler: Sampler
    prompt_tokens: int
    feed: list[int]  # prompt tokens not yet decoded
    pos: int  # position of the next token to decode
    limit: int  # max tokens to generate
    out: bytearray = field(default_factory=bytearray)
    generated: int = 0
    last: int = -1  # sampled token waiting to be decoded
    batch_row: int = -1  # row of this slot's logits in the current batch, -1 if none
    # Decoded incrementally, so each token costs the same however long the answer grows; a
    # multi-byte character split across tokens waits in the decoder until it is whole.
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("ignore")
    )
    _text: str = ""

    def add(self, piece: bytes) -> str:
        """Append one token's bytes; returns the text they complete."""
        self.out += piece
        new = self._decoder.decode(piece)
        self._text += new
        return new

    def text(self) -> str:
        return self._text


class BatchDecoder:
    """Decodes one set of requests; iterate `finished()` (or `progress()` for one stream)."""

    def __init__(
        self, engine: Engine, requests: Sequence[GenRequest], cancel: threading.Event | None
    ) -> None:
        self.engine = engine
        self.requests = list(requests)
        self.cancel = cancel
        self.prompts = [engine.tokenize(r.prompt) for r in self.requests]
        for request, tokens in zip(self.requests, self.prompts, strict=True):
            if len(tokens) >= engine.n_ctx:
                raise ModelError(
                    f"prompt of {len(tokens)} tokens does not fit the context of "
                    f"{engine.n_ctx} tokens",
                    where=request.prompt[:60] + "…",
                    hint="raise engine.n_ctx in the recipe, or shorten the prompt",
                )
        # Grammars are built up front: a bad schema fails before any decoding starts.
        self.grammars = [request_grammar(r) for r in self.requests]
        self.prefix_seq = engine.parallel  # the spare sequence id
        self.prefix_len = self._shared_prefix_len() if engine.reuse_prefix else 0
        self.slots: dict[int, _Slot] = {}  # seq id -> live slot

    def _shared_prefix_len(self) -> int:
        """Tokens every prompt starts with, if there are several prompts and it is worth it."""
        if len(self.prompts) < 2:
            return 0
        first = self.prompts[0]
        n = min(len(p) for p in self.prompts) - 1  # every slot keeps >= 1 token to get logits
        for tokens in self.prompts[1:]:
            n = _common_len(tokens, first, n)
        return n if n >= MIN_SHARED_PREFIX else 0

    # -- public iteration --------------------------------------------------------------------

    def finished(self) -> Iterator[tuple[int, GenResult]]:
        for index, result in self._run():
            if result is not None:
                yield index, result

    def progress(self) -> Iterator[tuple[str, GenResult | None]]:
        """For a single request: (text so far, None) after each token, then (text, result)."""
        for index, result in self._run():
            if result is not None:
                yield result.text, result
            else:
                slot = next(s for s in self.slots.values() if s.index == index)
                yield slot.text(), None

    # -- the decode loop ---------------------------------------------------------------------

    def _run(self) -> Iterator[tuple[int, GenResult | None]]:
        import llama_cpp

        engine = self.engine
        mem = llama_cpp.llama_get_memory(engine.ctx)
        capacity = max(512, engine.parallel)
        batch = llama_cpp.llama_batch_init(capacity, 0, 1)
        pending = deque(range(len(self.requests)))
        free = list(range(engine.parallel - 1, -1, -1))
        try:
            if self.prefix_len:
                self._load_prefix(batch, capacity, mem)
            while pending or self.slots:
                if self.cancel is not None and self.cancel.is_set():
                    yield from self._cancel_all(pending)
                    return
                while free and pending:
                    index = pending.popleft()
                    seq = max(free, key=lambda s: self._held(s, self.prompts[index]))
                    free.remove(seq)
                    self._start(index, seq, mem)
                placed = self._fill_batch(batch, capacity)
                status = llama_cpp.llama_decode(engine.ctx, batch)
                if status == 0:
                    for seq, tokens in placed.items():
                        engine.kv_tokens[seq] += tokens
                else:
                    engine.forget()
                    raise ModelError(
                        f"llama.cpp decode failed (status {status})",
                        where=str(engine.path),
                        hint="lower engine.parallel or raise engine.n_ctx",
                    )
                for seq, slot in list(self.slots.items()):
                    if slot.batch_row < 0:
                        continue
                    reason = self._accept(slot, slot.sampler.sample(slot.batch_row))
                    if reason is None:
                        yield slot.index, None
                        continue
                    result = self._finish(slot, reason)
                    free.append(seq)
                    yield slot.index, result
        finally:
            for slot in self.slots.values():
                slot.sampler.close()
            self.slots.clear()
            llama_cpp.llama_batch_free(batch)

    def _load_prefix(self, batch: Any, capacity: int, mem: Any) -> None:
        """Make the spare sequence hold the prefix all prompts share, computing what no
        sequence holds yet (a leaf's next step often finds its instructions there already)."""
        import llama_cpp

        engine = self.engine
        new = self.prompts[0][: self.prefix_len]
        keep = self._share(self.prefix_seq, new, len(new), mem)
        for start in range(keep, len(new), capacity):
            chunk = new[start : start + capacity]
            for i, token in enumerate(chunk):
                _put(batch, i, token, start + i, self.prefix_seq, False)
            batch.n_tokens = len(chunk)
            if llama_cpp.llama_decode(engine.ctx, batch) != 0:
                engine.forget()
                raise ModelError("llama.cpp failed on the shared prompt prefix")
            engine.kv_tokens[self.prefix_seq] += chunk
        engine.stats.prompt_computed += len(new) - keep

    def _held(self, seq: int, tokens: Sequence[int]) -> int:
        """How many leading tokens of `tokens` sequence `seq` already holds."""
        return _common_len(self.engine.kv_tokens[seq], tokens, len(tokens) - 1)

    def _share(self, seq: int, tokens: list[int], limit: int, mem: Any) -> int:
        """Give `seq` the longest prefix of `tokens` (at most `limit`) any sequence holds.

        Returns its length; the sequence keeps nothing else. With reuse off it keeps nothing.
        """
        import llama_cpp

        engine = self.engine
        held = engine.kv_tokens
        best, source = 0, seq
        if engine.reuse_prefix:
            for other in [seq, *(o for o in range(len(held)) if o != seq)]:
                n = _common_len(held[other], tokens, limit)
                if n > best:
                    best, source = n, other
        if source != seq:  # llama.cpp copies between streams only whole
            llama_cpp.llama_memory_seq_cp(mem, source, seq, -1, -1)
        llama_cpp.llama_memory_seq_rm(mem, seq, best, -1)
        held[seq] = tokens[:best]
        return best

    def _start(self, index: int, seq: int, mem: Any) -> None:
        request = self.requests[index]
        tokens = self.prompts[index]
        keep = self._share(seq, tokens, len(tokens) - 1, mem)  # >= 1 token left to get logits
        self.engine.stats.prompt_reused += keep
        self.engine.stats.prompt_computed += len(tokens) - keep
        self.slots[seq] = _Slot(
            index=index,
            seq=seq,
            request=request,
            sampler=Sampler(self.engine, request, self.grammars[index]),
            prompt_tokens=len(tokens),
            feed=tokens[keep:],
            pos=keep,
            limit=min(request.max_tokens, self.engine.n_ctx - len(tokens)),
        )

    def _fill_batch(self, batch: Any, capacity: int) -> dict[int, list[int]]:
        """One token for every generating slot, then prompt chunks in the room that is left.

        Returns the tokens placed per sequence. Rows go in sequence-id order: llama.cpp splits
        a multi-stream batch into micro-batches of consecutive sequence ids, so any other order
        would cut it into more, smaller ones.
        """
        n = 0
        placed: dict[int, list[int]] = {}
        ordered = sorted(self.slots.items())
        for seq, slot in ordered:
            slot.batch_row = -1
            if not slot.feed:
                _put(batch, n, slot.last, slot.pos, seq, True)
                placed[seq] = [slot.last]
                slot.batch_row = n
                slot.pos += 1
                n += 1
        for seq, slot in ordered:
            if not slot.feed or n >= capacity:
                continue
            chunk, slot.feed = slot.feed[: capacity - n], slot.feed[capacity - n :]
            for token in chunk:
                _put(batch, n, token, slot.pos, seq, False)
                slot.pos += 1
                n += 1
            placed[seq] = chunk
            if not slot.feed:  # the prompt's last token: its logits give the first answer token
                batch.logits[n - 1] = True
                slot.batch_row = n - 1
        batch.n_tokens = n
        return placed

    def _accept(self, slot: _Slot, token: int) -> FinishReason | None:
        """Record a sampled token; the finish reason once the sequence is done."""
        import llama_cpp

        if llama_cpp.llama_vocab_is_eog(self.engine.vocab, token):
            return "stop"
        slot.generated += 1
        new = slot.add(self.engine.token_bytes(token))
        slot.last = token
        if slot.request.stop and new:
            # only a stop string that ends inside the new text can be new
            reach = len(new) + max(len(s) for s in slot.request.stop) - 1
            window = slot.text()[-reach:]
            if any(s in window for s in slot.request.stop):
                return "stop"
        if slot.generated >= slot.limit:
            return "length"
        return None

    def _finish(self, slot: _Slot, reason: FinishReason) -> GenResult:
        """The slot's result; its KV cells stay for later requests to share."""
        del self.slots[slot.seq]
        slot.sampler.close()
        return _result(slot, reason)

    def _cancel_all(self, pending: deque[int]) -> Iterator[tuple[int, GenResult]]:
        for slot in list(self.slots.values()):
            yield slot.index, self._finish(slot, "cancelled")
        for index in pending:
            prompt_tokens = len(self.prompts[index])
            yield index, GenResult("", 0, prompt_tokens, "cancelled")


def _common_len(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = 0
    while n < limit and n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def _put(batch: Any, row: int, token: int, pos: int, seq: int, logits: bool) -> None:
    batch.token[row] = token
    batch.pos[row] = pos
    batch.n_seq_id[row] = 1
    batch.seq_id[row][0] = seq
    batch.logits[row] = logits


def _result(slot: _Slot, reason: FinishReason) -> GenResult:
    text = slot.text()
    request = slot.request
    if reason == "stop" and request.stop:
        cut = min((i for i in (text.find(s) for s in request.stop) if i >= 0), default=-1)
        if cut >= 0:
            text = text[:cut]
    value = None
    if request.schema is not None and reason == "stop":
        value = _parse_valid(text, request.schema)
    elif request.schema is not None and reason == "length":
        # The cap may fall right after the closing brace: then the value is whole after all.
        with contextlib.suppress(ModelError):
            value = _parse_valid(text, request.schema)
            reason = "stop"
    return GenResult(text, slot.generated, slot.prompt_tokens, reason, value)


def _parse_valid(text: str, schema: dict[str, Any]) -> Any:
    """The JSON value of a grammar-complete answer; a failure here is a bug in our grammar."""
    import jsonschema

    try:
        value = json.loads(text)
        jsonschema.validate(value, schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        raise ModelError(
            f"constrained output does not satisfy its schema ({exc}); this is a labdesk bug",
            where=text[:80],
        ) from None
    return value
