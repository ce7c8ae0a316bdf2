"""Engine.score on real GGUFs: batched log-probabilities equal llama-cpp-python's full-logits
evaluation of each request alone, and scoring leaves the KV book right for generation."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np
import pytest

from labdesk.errors import Cancelled, ModelError
from labdesk.models.engine import Engine
from labdesk.models.store import resolve_model
from labdesk.models.types import GenRequest, ScoreRequest
from labdesk.recipes import ModelRef
from labdesk.resources import package_file
from labdesk.workspace import Workspace

from .conftest import load

# Tolerance per token, in nats. The tiny teacher's weights are floats: with flash attention off,
# llama.cpp's numbers for it do not depend on how tokens are batched (measured: < 1e-7).
# SmolLM2's are Q4_1, multiplied with activations rounded to 8 bits, and llama.cpp picks its
# matrix kernel by how many tokens a decode call holds (a one-token call takes the vector path;
# which kernels, depends on the CPU the library was built for): the same position's logits moved
# by up to 1.3 between one-token and longer calls, on an AVX2 and an AVX-512 build alike. Scores
# of this file's requests: within EXACT on the AVX2 build, up to 0.19 nats apart on the AVX-512.
# With flash attention on, short query blocks (one token per sequence while decoding, the few
# tokens of a short continuation) are summed in half precision and long ones in single
# precision, so a request's numbers depend on where its tokens are cut into calls (the reference
# computes each request in one piece, the engine cuts after a prompt it shares): measured up to
# 0.28 nats (mean 0.05) on SmolLM2 Q4_1, 1e-3 on the tiny teacher. The tiny teacher with flash
# attention off keeps the exact check, so a bookkeeping mistake (a wrong position, a
# neighbour's KV cell) is caught there to EXACT. What runs beside a request never moves its
# numbers, with the engine's default settings (tested bit for bit below).
EXACT = 1e-4
LOOSE_MAX, LOOSE_MEAN = 0.5, 0.1


@pytest.fixture(scope="module", params=["tiny-teacher", "SmolLM2"])
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if request.param == "SmolLM2":
        return Path(request.getfixturevalue("smollm2"))
    ws = Workspace.open(tmp_path_factory.mktemp("home"))
    return resolve_model(ModelRef(builtin="tiny-teacher"), ws, want="gguf")


def _assert_close(differences: list[float], exact: bool) -> None:
    """Per-token differences in nats: within EXACT, or within the loose bounds (see above)."""
    if exact:
        assert max(differences) < EXACT
    else:
        assert max(differences) < LOOSE_MAX
        assert np.mean(differences) < LOOSE_MEAN


@functools.cache
def _float_weights(model: Path) -> bool:
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFReader

    floats = {Q.F32, Q.F16, Q.BF16}
    return all(t.tensor_type in floats for t in GGUFReader(model).tensors)


def _requests(engine: Engine) -> list[ScoreRequest]:
    """A judge-like batch: one long chat prompt, many replies; plus prompts of their own."""
    prompt = engine.chat_prompt(
        [
            {"role": "system", "content": "You judge answers about rivers and towns. " * 4},
            {"role": "user", "content": "The river Wend runs from the hills to Harrowmouth."},
        ]
    )
    replies = [
        "Yes",
        "No",
        "Yes, it is right.",
        "No, the river runs north to the hills.",
        " maybe",
        "I cannot tell from the text.",
        "Harrowmouth",
        "The answer is right, the river runs to the sea.",
        "",
    ]
    return [ScoreRequest(prompt, r) for r in replies] + [
        ScoreRequest("The river runs to the se", "a and the town."),  # "se" + "a" may merge
        ScoreRequest("Hello", " world, again and again."),
    ]


def _reference(path: Path, engine: Engine, requests: list[ScoreRequest]) -> list[list[float]]:
    """Each request alone through llama-cpp-python with every position's logits kept, with
    flash attention as the engine has it."""
    from llama_cpp import Llama

    llm = Llama(
        str(path),
        n_ctx=engine.n_ctx,
        n_threads=1,
        logits_all=True,
        flash_attn=engine.settings.flash_attn != "off",
        verbose=False,
    )
    out = []
    for request in requests:
        full = engine.tokenize(request.prompt + request.continuation)
        split = _split(engine, request)
        llm.reset()
        llm.eval(full)
        logits = np.asarray(llm.scores[: len(full)], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        logprobs = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
        out.append(logprobs[np.arange(split - 1, len(full) - 1), full[split:]].tolist())
    llm.close()
    return out


def _split(engine: Engine, request: ScoreRequest) -> int:
    """Where the continuation's tokens start: after the prompt's own tokens that survive
    tokenizing the whole text."""
    full = engine.tokenize(request.prompt + request.continuation)
    prompt = engine.tokenize(request.prompt)
    n = 0
    while n < len(prompt) and full[n] == prompt[n]:
        n += 1
    return n


@pytest.mark.parametrize("flash_attn", ["off", "on"])
def test_batched_scores_equal_each_request_alone(model: Path, flash_attn: str) -> None:
    engine = load(model, parallel=4, n_ctx=512, reuse_prefix=True, flash_attn=flash_attn)
    engine.forget()
    requests = _requests(engine)
    assert len(requests) > 2 * engine.parallel
    before = engine.stats.prompt_computed
    results = engine.score(requests)
    computed = engine.stats.prompt_computed - before
    expected = _reference(model, engine, requests)

    differences = []
    for request, result, reference in zip(requests, results, expected, strict=True):
        full = engine.tokenize(request.prompt + request.continuation)
        assert result.prompt_tokens == _split(engine, request)
        assert result.tokens == full[result.prompt_tokens :]
        assert len(result.logprobs) == len(reference) == len(result.tokens)
        assert all(lp <= 0 for lp in result.logprobs)
        differences += np.abs(np.subtract(result.logprobs, reference)).tolist()
    _assert_close(differences, exact=flash_attn == "off" and _float_weights(model))
    assert results[8].tokens == [] and results[8].total == 0.0  # the empty reply
    # The long chat prompt was computed once for its nine replies, not nine times.
    prompt_len = len(engine.tokenize(requests[0].prompt))
    assert computed < sum(len(engine.tokenize(r.prompt + r.continuation)) for r in requests) - (
        7 * (prompt_len - 2)
    )
    # A likelihood judge's verdict: the text's own word is more likely than a random one.
    assert results[0].total != results[1].total


def test_a_request_scores_the_same_whatever_is_scored_beside_it(model: Path) -> None:
    """Bit for bit: a request's numbers come from its own tokens, cut into decode calls by its
    own positions, whatever prompts of other lengths run beside it (decoding.py), with the
    engine's default settings on two threads. SmolLM2's numbers moved by up to 0.3 nats when
    chunks of unequal length shared a call."""
    engine = load(model, parallel=4, n_ctx=1024, reuse_prefix=False, n_threads=2)
    words = package_file("sample_docs", "kelderwick", "kelderwick.md").read_text().split()
    replies = ["Yes", "No, it is about a lighthouse.", "The island", "Kelderwick", " no", "Maybe"]
    requests = [
        ScoreRequest(
            engine.chat_prompt([{"role": "user", "content": " ".join(words[i * 17 : i * 17 + n])}]),
            reply,
        )
        for i, (n, reply) in enumerate(zip((30, 140, 60, 260, 110, 200), replies, strict=True))
    ]
    assert len({engine.count_tokens(r.prompt) for r in requests}) == len(requests)
    alone = [engine.score([request])[0].logprobs for request in requests]
    together = [result.logprobs for result in engine.score(requests)]
    reordered = [result.logprobs for result in engine.score(requests[::-1])][::-1]
    assert together == alone
    assert reordered == alone


def test_a_prompt_ending_inside_a_word_scores_the_merged_token(model: Path) -> None:
    engine = load(model, parallel=2, n_ctx=512)
    prompt, continuation = "The river runs to the se", "a."
    (result,) = engine.score([ScoreRequest(prompt, continuation)])
    prompt_tokens = engine.tokenize(prompt)
    full = engine.tokenize(prompt + continuation)
    assert result.tokens == full[result.prompt_tokens :]
    assert engine.detokenize(result.tokens).endswith(continuation)
    if full[: len(prompt_tokens)] != prompt_tokens:  # "se" and "a" merged into "sea"
        assert result.prompt_tokens < len(prompt_tokens)
        assert len(engine.detokenize(result.tokens)) > len(continuation)
    else:
        assert result.prompt_tokens == len(prompt_tokens)


def test_scoring_keeps_the_kv_book_right_for_generation(model: Path) -> None:
    engine = load(model, parallel=3, n_ctx=512, reuse_prefix=True, flash_attn="off")
    fresh = load(model, parallel=3, n_ctx=512, reuse_prefix=False, flash_attn="off")
    requests = _requests(engine)
    engine.score(requests)
    # What the sequences hold now is what scoring decoded: some holds the long chat prompt.
    prompt = engine.tokenize(requests[0].prompt)
    assert any(tokens[: len(prompt)] == prompt for tokens in engine.kv_tokens)
    generate = [GenRequest(requests[0].prompt + "Yes", 12), GenRequest("Hello world", 8)]
    before = engine.stats.prompt_reused
    assert [r.text for r in engine.generate(generate)] == [r.text for r in fresh.generate(generate)]
    assert engine.stats.prompt_reused - before >= len(prompt) - 1  # scoring's cells served
    # and scoring again after generation gives the same numbers
    again = engine.score(requests[:3])
    first = fresh.score(requests[:3])
    differences = [
        abs(x - y)
        for a, b in zip(again, first, strict=True)
        for x, y in zip(a.logprobs, b.logprobs, strict=True)
    ]
    _assert_close(differences, exact=_float_weights(model))


def test_bad_score_requests_are_clear_errors(model: Path) -> None:
    engine = load(model, parallel=2, n_ctx=256)
    with pytest.raises(ModelError, match="more than the context of 256"):
        engine.score([ScoreRequest("river " * 300, "sea")])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        engine.score([ScoreRequest("The river", " runs")], cancel=cancel)
    assert engine.score([]) == []
