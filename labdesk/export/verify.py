"""Check a written GGUF the only way that counts: llama.cpp loads it, tokenizes like the source
tokenizer, and generates. A failed check names the field or token that was wrong."""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from labdesk.errors import ModelError

if TYPE_CHECKING:
    from llama_cpp import Llama

    from labdesk.export.architectures import ModelSpec
    from labdesk.export.gguf_tokenizer import TokenizerInfo

SAMPLE_TEXTS = (
    "Hello world",
    "Once upon a time, there was a little girl.\nShe liked  two spaces and\n\nnew lines.",
    "What is 12 + 30? It is 42!",
    # where pre-tokenizers differ: case changes, contractions, digit runs, slashes, CR LF
    "CamelCaseWords and ALLCAPS, it's 2024-12-31 at ./src/main.py\r\n",
)


def load(path: Path, *, lora_path: Path | None = None, n_ctx: int = 256) -> Llama:
    """Open a GGUF with llama.cpp, turning its refusal into a ModelError that says why."""
    from llama_cpp import Llama

    errors: list[str] = []
    try:
        with llama_errors(errors):
            return Llama(
                model_path=str(path),
                lora_path=str(lora_path) if lora_path else None,
                n_ctx=n_ctx,
                n_threads=2,
                n_batch=n_ctx,
                seed=0,
                logits_all=True,
                # f32 KV cache: f16 would add ~1e-3 noise to the logits we compare
                type_k=0,
                type_v=0,
                verbose=False,
            )
    except (ValueError, RuntimeError) as exc:
        reason = " ".join(e.strip() for e in errors) or str(exc)
        raise ModelError(
            f"llama.cpp cannot load the written file: {reason}", where=str(lora_path or path)
        ) from exc


@contextlib.contextmanager
def llama_errors(sink: list[str]) -> Iterator[None]:
    """Collect llama.cpp's error log lines (its only account of why a load failed)."""
    import llama_cpp
    from llama_cpp import _logger

    @llama_cpp.llama_log_callback
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level == 3:  # GGML_LOG_LEVEL_ERROR
            sink.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        yield
    finally:
        llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))


def greedy_check(llm: Llama, where: Path, n_tokens: int = 8) -> list[int]:
    """Run a short greedy generation; the logits must be finite and tokens in range."""
    prompt = llm.tokenize(b"Hello", add_bos=True, special=False)
    llm.reset()
    llm.eval(prompt)
    logits = np.asarray(llm.scores[llm.n_tokens - 1])
    if not np.isfinite(logits).all():
        raise ModelError(
            "llama.cpp computes NaN/inf logits from the written file", where=str(where)
        )
    out = []
    for _ in range(n_tokens):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        if not 0 <= token < llm.n_vocab():
            raise ModelError(f"generated token id {token} is out of range", where=str(where))
        out.append(token)
        llm.eval([token])
    return out


def check_model(path: Path, model_dir: Path, spec: ModelSpec, tok: TokenizerInfo) -> None:
    """A converted model: metadata, vocabulary, special tokens, tokenization and generation."""
    llm = load(path)
    try:
        meta = llm.metadata
        expect = {
            "general.architecture": spec.arch_name,
            f"{spec.arch_name}.block_count": str(spec.n_layer),
            f"{spec.arch_name}.attention.head_count": str(spec.n_head),
            f"{spec.arch_name}.attention.head_count_kv": str(spec.n_head_kv),
        }
        for key, value in expect.items():
            if meta.get(key) != value:
                raise ModelError(
                    f"metadata {key} is {meta.get(key)!r}, expected {value!r}", where=str(path)
                )
        if llm.n_vocab() != tok.n_tokens:
            raise ModelError(
                f"tokenizer.ggml.tokens has {llm.n_vocab()} entries, expected {tok.n_tokens}",
                where=str(path),
            )
        for text, tid in tok.added.items():
            got = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            if got != [tid]:
                raise ModelError(
                    f"special token {text!r} tokenizes to {got}, expected [{tid}]", where=str(path)
                )
        reference = _reference_tokenizer(model_dir)
        for text in (*SAMPLE_TEXTS, *(f"{marker}\n{SAMPLE_TEXTS[0]}" for marker in tok.added)):
            ours = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            theirs = reference(text)
            if theirs is not None and ours != theirs:
                raise ModelError(
                    f"tokenizer mismatch on {text!r}: llama.cpp gives {ours[:12]}..., "
                    f"the model's tokenizer gives {theirs[:12]}...",
                    where=str(path),
                    hint="the tokenizer's pre-tokenizer or normalizer is not one labdesk maps correctly",
                )
        greedy_check(llm, path)
    finally:
        llm.close()


def _reference_tokenizer(model_dir: Path) -> Any:
    """Encode with the model's own tokenizer.json (the `tokenizers` library, no transformers)."""
    file = model_dir / "tokenizer.json"
    if not file.is_file():
        return lambda text: None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(file))
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids
