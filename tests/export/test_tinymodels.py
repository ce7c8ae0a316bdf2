"""Tiny models: real tokenizers whose ids agree between transformers and llama.cpp."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from labdesk.export import verify
from labdesk.tinymodels import (
    CHAT_MARKERS,
    EOS,
    BuiltinModel,
    build_tiny_model,
    chat_text,
    ensure_builtin,
)

TEXTS = [
    chat_text("You are kind.", "Why does ice float?\nTell me.", "Ice is lighter than water."),
    "Plain text with  two spaces,\n\nblank lines and digits 12345.",
    "<|user|>\nHi<|assistant|>\n",
]


@pytest.mark.parametrize("kind", ["tiny_bpe", "tiny_spm"])
def test_token_ids_agree_between_transformers_and_llama_cpp(
    kind: str, request: pytest.FixtureRequest
) -> None:
    from transformers import AutoTokenizer

    model: BuiltinModel = request.getfixturevalue(kind)
    hf = AutoTokenizer.from_pretrained(model.hf_dir)
    llm = verify.load(model.gguf)
    try:
        for text in TEXTS:
            ours = llm.tokenize(text.encode(), add_bos=True, special=True)
            theirs = hf(text).input_ids
            assert ours == theirs, text
        for marker in (*CHAT_MARKERS, EOS):
            (tid,) = llm.tokenize(marker.encode(), add_bos=False, special=True)
            assert hf.convert_ids_to_tokens(tid) == marker
            # a control token: not produced from the same text when specials are not parsed
            assert llm.tokenize(marker.encode(), add_bos=False, special=False) != [tid]
        assert llm.token_eos() == hf.convert_tokens_to_ids(EOS)
        assert llm.metadata["tokenizer.chat_template"] == hf.chat_template
        assert "\n" in hf.decode(hf(TEXTS[0]).input_ids)
    finally:
        llm.close()


def test_same_seed_same_model(tmp_path: Path, tiny_bpe: BuiltinModel) -> None:
    again = build_tiny_model(tmp_path / "hf", tokenizer="bpe", seed=3)
    assert _digest(again.gguf) == _digest(tiny_bpe.gguf)
    other = build_tiny_model(tmp_path / "other" / "hf", tokenizer="bpe", seed=5)
    assert _digest(other.gguf) != _digest(tiny_bpe.gguf)


def test_ensure_builtin_builds_once_and_holds_a_long_context(tmp_path: Path) -> None:
    model = ensure_builtin("tiny-student", tmp_path)
    assert model.hf_dir == tmp_path / "builtin" / "tiny-student" / "hf"
    stamp = model.gguf.stat().st_mtime_ns
    assert ensure_builtin("tiny-student", tmp_path) == model
    assert model.gguf.stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "builtin").iterdir()] == ["tiny-student"]
    config = json.loads((model.hf_dir / "config.json").read_text())
    assert config["max_position_embeddings"] >= 2048
    llm = verify.load(model.gguf, n_ctx=2048)
    try:
        prompt = llm.tokenize(("Alder Bend " * 700).encode(), add_bos=False)
        assert len(prompt) >= 1400
        llm.eval(prompt)  # a long prompt fits the context
        assert llm.n_tokens == len(prompt)
    finally:
        llm.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
