"""Copy a Hugging Face tokenizer into GGUF metadata the way llama.cpp reads it.

Two vocabulary kinds: SentencePiece (``tokenizer.model``, llama.cpp's "llama" tokenizer, scored
pieces) and byte-level BPE (``tokenizer.json``, llama.cpp's "gpt2" tokenizer plus a named
pre-tokenizer). Special tokens, add-BOS/EOS flags and the chat template come from gguf's
`SpecialVocab`, which reads ``tokenizer_config.json`` / ``chat_template.jinja``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gguf

from labdesk.errors import ModelError

# llama.cpp names the regex that splits text before BPE; we recognise the ones we can map.
# Each is the `Split` pattern of the family's published tokenizer.json, character for character.
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")
TEKKEN_REGEX = (  # Mistral Nemo / Small / Ministral ("tekken")
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
    r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_SPLIT_PRE_NAMES = {LLAMA3_REGEX: "llama-bpe", QWEN2_REGEX: "qwen2", TEKKEN_REGEX: "tekken"}


@dataclass(frozen=True)
class TokenizerInfo:
    kind: str
    """"spm" or "bpe"."""
    n_tokens: int
    added: dict[str, int]
    """Added tokens (chat markers, BOS/EOS...) by text, to check after loading."""


def add_tokenizer(writer: gguf.GGUFWriter, model_dir: Path, vocab_size: int) -> TokenizerInfo:
    """Write the vocabulary, scores, token types, special ids and chat template."""
    tokenizer_json = _load_json(model_dir / "tokenizer.json")
    if (model_dir / "tokenizer.model").is_file():
        info = _add_sentencepiece(writer, model_dir, tokenizer_json, vocab_size)
    elif tokenizer_json and tokenizer_json.get("model", {}).get("type") == "BPE":
        info = _add_bpe(writer, model_dir, tokenizer_json, vocab_size)
    else:
        raise ModelError(
            "no supported tokenizer (need tokenizer.model or a BPE tokenizer.json)",
            where=str(model_dir),
            hint="save the tokenizer next to the model with tokenizer.save_pretrained()",
        )
    special = gguf.SpecialVocab(model_dir, load_merges=info.kind == "bpe", n_vocab=info.n_tokens)
    special.add_to_gguf(writer, quiet=True)
    return info


def _load_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"not valid JSON: {exc}", where=str(path)) from exc
    return data if isinstance(data, dict) else None


def _added_tokens(tokenizer_json: dict[str, Any] | None) -> list[dict[str, Any]]:
    return list((tokenizer_json or {}).get("added_tokens", []))


def _pad_to(tokens: list[bytes], scores: list[float], types: list[int], vocab_size: int) -> None:
    """Fill ids the model has rows for but the tokenizer never emits (vocab padded for speed)."""
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]".encode())
        scores.append(-1000.0)
        types.append(gguf.TokenType.UNUSED)


def _add_sentencepiece(
    writer: gguf.GGUFWriter, model_dir: Path, tokenizer_json: dict[str, Any] | None, vocab_size: int
) -> TokenizerInfo:
    from sentencepiece import SentencePieceProcessor
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    path = model_dir / "tokenizer.model"
    proto = model_pb2.ModelProto()  # type: ignore[attr-defined]
    try:
        proto.ParseFromString(path.read_bytes())
        sp = SentencePieceProcessor(model_file=str(path))
    except Exception as exc:  # protobuf/sentencepiece raise their own types
        raise ModelError(f"cannot read SentencePiece model: {exc}", where=str(path)) from exc
    if proto.trainer_spec.model_type != 2:  # unigram pieces would tokenize differently
        raise ModelError(
            "only SentencePiece BPE models are supported (llama.cpp tokenizes SPM by merge score)",
            where=str(path),
        )
    tokens: list[bytes] = []
    scores: list[float] = []
    types: list[int] = []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i).encode("utf-8"))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(gguf.TokenType.UNKNOWN)
        elif sp.is_control(i):
            types.append(gguf.TokenType.CONTROL)
        elif sp.is_unused(i):
            types.append(gguf.TokenType.UNUSED)
        elif sp.is_byte(i):
            types.append(gguf.TokenType.BYTE)
        else:
            types.append(gguf.TokenType.NORMAL)
    added: dict[str, int] = {}
    for token in _added_tokens(tokenizer_json):
        tid, text = int(token["id"]), str(token["content"])
        added[text] = tid
        if tid < len(tokens):
            if token.get("special") and types[tid] == gguf.TokenType.NORMAL:
                types[tid] = gguf.TokenType.CONTROL
            continue
        _pad_to(tokens, scores, types, tid)
        tokens.append(text.encode("utf-8"))
        scores.append(-1000.0)
        types.append(
            gguf.TokenType.CONTROL if token.get("special") else gguf.TokenType.USER_DEFINED
        )
    _check_size(tokens, vocab_size, model_dir)
    _pad_to(tokens, scores, types, vocab_size)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_add_space_prefix(bool(proto.normalizer_spec.add_dummy_prefix))
    return TokenizerInfo("spm", len(tokens), added)


def _add_bpe(
    writer: gguf.GGUFWriter, model_dir: Path, tokenizer_json: dict[str, Any], vocab_size: int
) -> TokenizerInfo:
    vocab: dict[str, int] = dict(tokenizer_json["model"]["vocab"])
    added_list = _added_tokens(tokenizer_json)
    special_ids = {int(t["id"]) for t in added_list if t.get("special")}
    user_ids = {int(t["id"]) for t in added_list if not t.get("special")}
    for token in added_list:
        vocab[str(token["content"])] = int(token["id"])
    by_id = {tid: text for text, tid in vocab.items()}
    n_tokens = max(vocab_size, max(by_id) + 1)
    _check_size(list(range(max(by_id) + 1)), vocab_size, model_dir)
    tokens: list[bytes] = []
    types: list[int] = []
    for i in range(n_tokens):
        if i not in by_id:
            tokens.append(f"[PAD{i}]".encode())
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[i].encode("utf-8"))
        if i in special_ids:
            types.append(gguf.TokenType.CONTROL)
        elif i in user_ids:
            types.append(gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_bpe_pre_name(tokenizer_json, model_dir))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    added = {str(t["content"]): int(t["id"]) for t in added_list}
    return TokenizerInfo("bpe", n_tokens, added)


def _check_size(ids: list[Any], vocab_size: int, model_dir: Path) -> None:
    if len(ids) > vocab_size:
        raise ModelError(
            f"the tokenizer has {len(ids)} tokens but the model's embedding has {vocab_size} rows",
            where=str(model_dir),
            hint="resize the model's embeddings to the tokenizer (resize_token_embeddings) and save again",
        )


def _bpe_pre_name(tokenizer_json: dict[str, Any], model_dir: Path) -> str:
    """The llama.cpp pre-tokenizer whose splitting matches this tokenizer.json's."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits"):
        return "refact"
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        regex = steps[0].get("pattern", {}).get("Regex")
        if regex in _SPLIT_PRE_NAMES:
            return _SPLIT_PRE_NAMES[regex]
    raise ModelError(
        f"BPE pre-tokenizer {kinds} is not one labdesk can map to llama.cpp",
        where=str(model_dir / "tokenizer.json"),
        hint="supported: GPT-2 byte-level, Llama 3, Qwen2, Mistral Tekken and Granite/Refact "
        "pre-tokenizers",
    )
