"""Continuous batching on llama.cpp's low-level API.

Up to `parallel` sequences live in one context, each with its own sequence id and sampler.
Every step advances each of them by one chunk: one `llama_decode` call takes the next token of
every generating sequence, and prompt chunks go in calls of their own, one length to a call
(decoding.py says why). A finished sequence frees its slot for the next request at once.

A new request starts from the longest prefix of its prompt that any sequence holds — the
shared instructions of a leaf's step, the previous request, a chat's earlier turns — so only
the rest is computed (decoding.py, kvcache.py).
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
from labdesk.models.decoding import Decoding, equal_length_calls
from labdesk.models.kvcache import Tokens, as_tokens
from labdesk.models.sampling import Sampler, request_grammar, sample_rows
from labdesk.models.types import FinishReason, GenRequest, GenResult

if TYPE_CHECKING:
    from labdesk.models.engine import Engine


@dataclass
class _Slot:
    index: int  # request index
    seq: int  # llama.cpp sequence id
    request: GenRequest
    sampler: Sampler
    prompt_tokens: int
    feed: Tokens  # prompt tokens not yet decoded
    pos: int  # position of the next token to decode
    limit: int  # max tokens to generate
    generated: int = 0
    last: int = -1  # sampled token waiting to be decoded
    # Decoded incrementally, so each token costs the same however long the answer grows; a
    # multi-byte character split across tokens waits in the decoder until it is whole.
    _decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")("ignore")
    )
    _text: str = ""

    def add(self, piece: bytes) -> str:
        """Append one token's bytes; returns the text they complete."""
        new = self._decoder.decode(piece)
        self._text += new
        return new

    def text(self) -> str:
        return self._text


class BatchDecoder(Decoding):
    """Decodes one set of requests; iterate `finished()` (or `progress()` for one stream)."""

    def __init__(
        self, engine: Engine, requests: Sequence[GenRequest], cancel: threading.Event | None
    ) -> None:
        self.requests = list(requests)
        self.cancel = cancel
        prompts = [engine.prompt_tokens(r.prompt) for r in self.requests]
        for request, tokens in zip(self.requests, prompts, strict=True):
            if len(tokens) >= engine.n_ctx:
                raise ModelError(
                    f"prompt of {len(tokens)} tokens does not fit the context of "
                    f"{engine.n_ctx} tokens",
                    where=request.prompt[:60] + "…",
                    hint="raise engine.n_ctx in the recipe, or shorten the prompt",
                )
        # Grammars are built up front: a bad schema fails before any decoding starts.
        self.grammars = [request_grammar(r) for r in self.requests]
        # Every slot decodes at least its prompt's last token, whose logits give the answer's
        # first token.
        super().__init__(engine, prompts, [len(p) - 1 for p in prompts])
        self.slots: dict[int, _Slot] = {}  # seq id -> live slot

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
        pending = deque(range(len(self.requests)))
        free = list(range(self.engine.parallel - 1, -1, -1))
        try:
            self.load_prefix()
            while pending or self.slots:
                while free and pending:
                    index = pending.popleft()
                    seq, kept = self.take_slot(free, index)
                    self._start(index, seq, kept)
                for call in self._calls():
                    if self.cancel is not None and self.cancel.is_set():
                        yield from self._cancel_all(pending)
                        return
                    sampling = self._fill_batch(call)
                    self.decode()
                    tokens = sample_rows(self.logits(), [slot.sampler for slot in sampling])
                    for slot, token in zip(sampling, tokens, strict=True):
                        reason = self._accept(slot, token)
                        if reason is None:
                            slot.last = token
                            yield slot.index, None
                        else:
                            free.append(slot.seq)
                            yield slot.index, self._finish(slot, reason)
        finally:
            for slot in self.slots.values():
                slot.sampler.close()
            self.slots.clear()

    def _start(self, index: int, seq: int, kept: int) -> None:
        request = self.requests[index]
        tokens = self.tokens[index]
        self.slots[seq] = _Slot(
            index=index,
            seq=seq,
            request=request,
            sampler=Sampler(self.engine, request, self.grammars[index]),
            prompt_tokens=len(tokens),
            feed=tokens[kept:],
            pos=kept,
            limit=min(request.max_tokens, self.engine.n_ctx - len(tokens)),
        )

    def _calls(self) -> list[list[_Slot]]:
        """This step's decode calls: the next token of every generating slot and the next
        prompt chunk (a batch's worth) of every other, grouped into calls of one chunk length.

        Slots go in sequence-id order: llama.cpp splits a multi-stream batch into micro-batches
        of consecutive sequence ids, so any other order would cut it into more, smaller ones.
        """
        ordered = [slot for _, slot in sorted(self.slots.items())]
        room = self.batch.capacity
        lengths = [min(len(slot.feed), room) if len(slot.feed) else 1 for slot in ordered]
        calls = equal_length_calls(lengths, [1] * len(ordered), tokens=room, logits=room)
        return [[ordered[i] for i in call] for call in calls]

    def _fill_batch(self, call: list[_Slot]) -> list[_Slot]:
        """Put each slot's chunk in the batch; returns the slots to sample after this call (those
        that decode a generated token or their prompt's last one), in the order of their rows."""
        batch = self.batch
        batch.clear()
        if all(not len(slot.feed) for slot in call):  # a decoding step: one slice per field
            batch.add_each(
                [slot.seq for slot in call],
                [slot.last for slot in call],
                [slot.pos for slot in call],
            )
            for slot in call:
                slot.pos += 1
            return call
        sampling = []
        for slot in call:
            if len(slot.feed):
                chunk, slot.feed = slot.feed[: batch.capacity], slot.feed[batch.capacity :]
            else:
                chunk = as_tokens([slot.last])
            # a generated token or the prompt's last: its logits give the next answer token
            last = not len(slot.feed)
            batch.add(slot.seq, chunk, slot.pos, _last_only(len(chunk)) if last else False)
            slot.pos += len(chunk)
            if last:
                sampling.append(slot)
        return sampling

    def _accept(self, slot: _Slot, token: int) -> FinishReason | None:
        """Record a sampled token; the finish reason once the sequence is done."""
        if self.engine.is_eog(token):
            return "stop"
        slot.generated += 1
        new = slot.add(self.engine.token_bytes(token))
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
            yield index, GenResult("", 0, len(self.tokens[index]), "cancelled")


def _last_only(n: int) -> Any:
    import numpy as np

    mask = np.zeros(n, dtype=bool)
    mask[-1] = True
    return mask


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
