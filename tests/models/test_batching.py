"""Batched decoding on real llama.cpp: equal to one-at-a-time, with refills and prefix reuse."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from labdesk.errors import ModelError
from labdesk.models.batch import BatchDecoder
from labdesk.models.decoding import equal_length_calls
from labdesk.models.types import GenRequest, GenResult
from labdesk.resources import package_file

from .conftest import load

STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside."


def _requests() -> list[GenRequest]:
    # Different prompt lengths and answer lengths, more requests than slots, so slots free up
    # at different steps and are refilled mid-run.
    openings = ["Once upon a time", "Tom had a red ball", STORY, "The cat", STORY + " One day"]
    return [
        GenRequest(openings[i % len(openings)] + " " * (i % 2), max_tokens=8 + 7 * (i % 4))
        for i in range(11)
    ]


def test_batched_equals_sequential_at_temperature_zero(stories_gguf: Path) -> None:
    requests = _requests()
    sequential = [load(stories_gguf, parallel=1).generate([r])[0] for r in requests]
    finished: list[int] = []
    batched = load(stories_gguf, parallel=4).generate(
        requests, on_result=lambda i, _r: finished.append(i)
    )
    assert [r.text for r in batched] == [r.text for r in sequential]
    assert [r.tokens for r in batched] == [r.tokens for r in sequential]
    assert all(r.finish_reason == "length" for r in batched)
    assert [r.tokens for r in batched] == [q.max_tokens for q in requests]
    # Short answers finished first: slots were freed and refilled, not run in rigid waves.
    assert sorted(finished) == list(range(len(requests)))
    assert finished != list(range(len(requests)))
    assert "little girl" in sequential[0].text  # the real model writes its known story


def test_shared_prefix_reuse_gives_identical_output(stories_gguf: Path) -> None:
    endings = ["Lily", "One day, she", "Her mom said", "The sun", "She saw a", "Then"]
    requests = [GenRequest(f"{STORY} {STORY} {end}", max_tokens=12) for end in endings]
    reused = load(stories_gguf, reuse_prefix=True)
    plain = load(stories_gguf, reuse_prefix=False)
    decoder = BatchDecoder(reused, requests, None)
    assert decoder.prefix_len >= 40  # the two stories are shared and evaluated once
    assert BatchDecoder(plain, requests, None).prefix_len == 0
    assert [r.text for r in reused.generate(requests)] == [r.text for r in plain.generate(requests)]


def test_seeded_sampling_is_reproducible(stories_gguf: Path) -> None:
    engine = load(stories_gguf)
    requests = [GenRequest(STORY, 24, temperature=1.0, top_p=0.9, seed=s) for s in (1, 2, 1, 3)]
    first = engine.generate(requests)
    again = engine.generate(list(reversed(requests)))[::-1]  # other slots, other neighbours
    assert [r.text for r in first] == [r.text for r in again]
    assert first[0].text == first[2].text
    assert len({first[0].text, first[1].text, first[3].text}) == 3


def test_stop_strings_cut_the_text(stories_gguf: Path) -> None:
    engine = load(stories_gguf)
    full = engine.generate([GenRequest("Once upon a time", 40)])[0].text
    assert "Lily" in full
    cut = engine.generate([GenRequest("Once upon a time", 40, stop=("Lily",))])[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full[: full.index("Lily")]


def test_cancel_stops_generation_within_a_few_tokens(stories_gguf: Path) -> None:
    engine = load(stories_gguf)
    cancel = threading.Event()
    seen: list[GenResult] = []

    def stop_after_first(index: int, result: GenResult) -> None:
        seen.append(result)
        cancel.set()

    requests = [GenRequest("Once upon a time", 4)] + [
        GenRequest("Once upon a time", 400) for _ in range(6)
    ]
    results = engine.generate(requests, on_result=stop_after_first, cancel=cancel)
    assert results[0].finish_reason == "length"
    assert all(r.finish_reason == "cancelled" for r in results[1:])
    # Three ran beside the short one: they stopped within a token of it; the rest never ran.
    assert [r.tokens for r in results[1:4]] == [4, 4, 4]
    assert [r.tokens for r in results[4:]] == [0, 0, 0]


def test_stream_yields_the_same_text_and_cancels(stories_gguf: Path) -> None:
    engine = load(stories_gguf)
    whole = engine.generate([GenRequest("Once upon a time", 30)])[0].text
    assert "".join(engine.stream("Once upon a time", max_tokens=30)) == whole

    cancel = threading.Event()
    pieces = []
    for piece in engine.stream("Once upon a time", max_tokens=400, cancel=cancel):
        pieces.append(piece)
        if len(pieces) == 5:
            cancel.set()
    assert len(pieces) <= 6
    assert whole.startswith("".join(pieces))


def test_stream_holds_back_a_partial_stop_string(stories_gguf: Path) -> None:
    engine = load(stories_gguf)
    pieces = list(engine.stream("Once upon a time", max_tokens=40, stop=("named Lily",)))
    text = "".join(pieces)
    assert text.endswith("little girl ")
    assert "named" not in text


def test_chat_prompt_and_token_counts(stories_gguf: Path) -> None:
    engine = load(
        stories_gguf,
        chat_template="{% for m in messages %}[{{ m.role }}] "
        "{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant] {% endif %}",
    )
    prompt = engine.chat_prompt([{"role": "user", "content": "Hi"}])
    assert prompt == "[user] Hi\n[assistant] "
    assert engine.count_tokens(prompt) == len(engine.tokenize(prompt)) > 3
    assert engine.tokenize("Once")[0] == 1  # BOS added once
    assert engine.n_ctx == 512


def test_every_slot_can_fill_its_whole_context(random_gguf: Path) -> None:
    # Prompts of many lengths, answers capped only by the context: the shared KV cache is
    # filled to the brim while slots free and refill at different steps.
    words = ["the", "cat", "sat", "on", "a", "red", "mat", "and", "saw", "big", "dog"]
    shared = " ".join(words[k % 11] for k in range(30))
    requests = [
        GenRequest(
            shared + " " + " ".join(words[(i * k) % 11] for k in range(1, 33 * (i % 5) + 8)), 300
        )
        for i in range(16)
    ]
    for reuse in (False, True):
        engine = load(random_gguf, n_ctx=256, reuse_prefix=reuse)
        assert (BatchDecoder(engine, requests, None).prefix_len > 25) == reuse
        results = engine.generate(requests)
        assert all(r.prompt_tokens + r.tokens == 256 for r in results)
        assert all(r.finish_reason == "length" for r in results)


def test_a_prompt_longer_than_the_context_is_a_clear_error(stories_gguf: Path) -> None:
    engine = load(stories_gguf, n_ctx=256)
    with pytest.raises(ModelError, match="does not fit the context of 256") as err:
        engine.generate([GenRequest(STORY * 20, 10)])
    assert err.value.hint and "n_ctx" in err.value.hint


def test_prefix_kept_between_calls_gives_identical_output(stories_gguf: Path) -> None:
    # A chat's next turn, or a leaf's next step: the new prompts extend what the last call saw.
    first = GenRequest(f"{STORY} {STORY} Lily", max_tokens=10)
    later = [GenRequest(f"{STORY} {STORY} {end}", max_tokens=10) for end in ("Then", "The sun")]
    engine = load(stories_gguf, reuse_prefix=True, parallel=2)
    fresh = load(stories_gguf, reuse_prefix=False, parallel=2)
    assert engine.generate([first])[0].text == fresh.generate([first])[0].text
    prompt = engine.tokenize(first.prompt)
    # some slot keeps the whole prompt (and the answer tokens it decoded)
    assert any(tokens[: len(prompt)] == prompt for tokens in engine.kv_tokens)
    held = len(engine.tokenize(f"{STORY} {STORY}"))
    before = engine.stats.prompt_computed
    assert [r.text for r in engine.generate(later)] == [r.text for r in fresh.generate(later)]
    computed = engine.stats.prompt_computed - before
    total = sum(len(engine.tokenize(r.prompt)) for r in later)
    assert computed < total - 2 * (held - 5)  # the two stories were not computed again


def test_kv_layout_has_a_stream_per_sequence(stories_gguf: Path) -> None:
    """A stream of n_ctx cells per slot, plus the spare prefix sequence's when reuse is on."""
    import llama_cpp

    shared = load(stories_gguf, n_ctx=256, parallel=4, reuse_prefix=True)
    split = load(stories_gguf, n_ctx=256, parallel=4, reuse_prefix=False)
    assert llama_cpp.llama_n_ctx_seq(shared.ctx) == 256
    assert llama_cpp.llama_n_ctx_seq(split.ctx) == 256
    assert llama_cpp.llama_n_seq_max(shared.ctx) == 5  # the spare prefix sequence
    assert llama_cpp.llama_n_seq_max(split.ctx) == 4


def test_each_request_continues_from_whichever_slot_holds_its_start(stories_gguf: Path) -> None:
    """Turn two of several conversations: each finds its own turn one in some slot's kept cells."""
    engine = load(stories_gguf, reuse_prefix=True, parallel=3)
    fresh = load(stories_gguf, reuse_prefix=False, parallel=3)
    openings = [f"{STORY} Lily", "Tom had a red ball and a big dog.", f"{STORY} {STORY} The sun"]
    first = [GenRequest(o, max_tokens=12) for o in openings]
    answers = [r.text for r in engine.generate(first)]
    assert answers == [r.text for r in fresh.generate(first)]
    # the next turns, in another order: each must find its own first turn wherever it is kept
    turns = zip(openings, answers, strict=True)
    later = [GenRequest(f"{o}{a} Then", max_tokens=12) for o, a in turns][::-1]
    before = engine.stats.prompt_computed
    assert [r.text for r in engine.generate(later)] == [r.text for r in fresh.generate(later)]
    computed = engine.stats.prompt_computed - before
    assert computed <= 3 * 4  # " Then" and a token or two where the answer re-tokenizes


def test_forget_drops_every_kept_prompt(stories_gguf: Path) -> None:
    engine = load(stories_gguf, reuse_prefix=True, parallel=2)
    request = GenRequest(f"{STORY} {STORY}", max_tokens=4)
    text = engine.generate([request])[0].text
    engine.forget()
    assert not any(engine.kv_tokens)
    before = engine.stats.prompt_computed
    assert engine.generate([request])[0].text == text
    assert engine.stats.prompt_computed - before == len(engine.tokenize(request.prompt))


def test_a_reply_is_the_same_whatever_is_decoded_beside_it(smollm2: Path) -> None:
    """Sampled replies to prompts of many lengths are the same, token for token, alone, all
    together, and with some of them left out, as a resumed run leaves out the requests it has
    cached (decoding.py). Default settings on two threads: SmolLM2's logits moved by up to 1.2
    when a prompt's chunk shared a decode call with chunks of other lengths, and by up to 0.8
    with flash attention on when other sequences stepped beside a token (engine.py), and a
    resumed run drew other replies."""
    engine = load(smollm2, parallel=4, n_ctx=1024, reuse_prefix=False, n_threads=2)
    words = package_file("sample_docs", "kelderwick", "kelderwick.md").read_text().split()
    requests = [
        GenRequest(
            engine.chat_prompt(
                [{"role": "user", "content": " ".join(words[i * 23 : i * 23 + n]) + "\nAsk."}]
            ),
            24,
            temperature=1.0,
            top_p=0.95,
            seed=i,
        )
        for i, n in enumerate((40, 300, 90, 220, 150, 20, 260))
    ]
    alone = [engine.generate([request])[0].text for request in requests]
    assert [r.text for r in engine.generate(requests)] == alone
    assert [r.text for r in engine.generate(requests[2:])] == alone[2:]


def test_decode_calls_hold_chunks_of_one_length() -> None:
    lengths = [1, 300, 1, 120, 300, 1, 1]
    rows = [1, 0, 1, 40, 1, 1, 1]
    assert equal_length_calls(lengths, rows, tokens=512, logits=128) == [
        [0, 2, 5, 6],
        [1],
        [3],
        [4],  # 300 more tokens would overflow the first call of 300
    ]
    # the rows of logits a call returns are bounded too
    assert equal_length_calls([4, 4, 4], [3, 3, 3], tokens=512, logits=6) == [[0, 1], [2]]
