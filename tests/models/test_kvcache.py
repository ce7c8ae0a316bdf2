"""The engine's KV book: the vectorised longest-prefix search agrees with the plain loop, and a
prompt counted while it is built is not tokenized again when generated from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labdesk.models.kvcache import as_tokens, common_len
from labdesk.models.types import GenRequest

from .conftest import load


def _plain_common(a: list[int], b: list[int], limit: int) -> int:
    n = 0
    while n < limit and n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def test_prefix_search_matches_the_plain_loop(stories_gguf: Path) -> None:
    engine = load(stories_gguf, parallel=6, n_ctx=256, reuse_prefix=True)
    kv = engine.kv
    rng = np.random.default_rng(0)
    try:
        for _ in range(200):
            engine.forget()
            base = rng.integers(0, 4, size=64).tolist()  # a tiny alphabet: long shared runs
            books = []
            for seq in range(kv.n_seq):
                n = int(rng.integers(0, 65))
                held = base[: int(rng.integers(0, n + 1))] + rng.integers(0, 4, size=64).tolist()
                held = held[:n]
                books.append(held)
                if held:
                    kv.extend(
                        np.full(n, seq, dtype=np.int32),
                        np.arange(n, dtype=np.int32),
                        as_tokens(held),
                    )
            query = base[: int(rng.integers(0, 65))]
            limit = int(rng.integers(0, 70))
            expected = [_plain_common(book, query, limit) for book in books]
            assert kv.matches(as_tokens(query), limit).tolist() == expected
            assert engine.kv_tokens == books
            assert common_len(as_tokens(books[0]), as_tokens(query), limit) == expected[0]
            free = [int(s) for s in rng.permutation(kv.n_seq - 1)[:3]]
            best = kv.best_free(free, as_tokens(query), limit)
            assert expected[best] == max(expected[s] for s in free)
            assert best == next(s for s in free if expected[s] == expected[best])
    finally:
        engine.forget()


def test_a_counted_prompt_is_tokenized_once(
    stories_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = load(stories_gguf, parallel=2, n_ctx=256)
    calls: list[str] = []
    real = engine._tokenize

    def counting(text: str) -> list[int]:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(engine, "_tokenize", counting)
    prompt = "Once upon a time, there was a tokenizer that counted every call."
    n = engine.count_tokens(prompt)
    result = engine.generate([GenRequest(prompt, 4)])[0]
    assert result.prompt_tokens == n
    assert calls == [prompt]
