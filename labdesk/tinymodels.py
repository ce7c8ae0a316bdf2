"""Tiny models built on this machine, for tests, benchmarks and the offline demo.

Each model is a real Hugging Face folder (safetensors + a tokenizer really trained on the text
bundled in ``tiny_corpus.txt``) plus its GGUF written by labdesk's own converter. The chat format
is the LAB/Granite one::

    <|system|>\\n{system}\\n<|user|>\\n{user}\\n<|assistant|>\\n{answer}<|endoftext|>

with the markers as special (control) tokens, so transformers and llama.cpp give the same ids.
Weights are random (deterministic by seed): the models prove the pipeline runs, not that it
teaches anything. A build takes seconds on a CPU, most of it importing torch.

Besides Llama (the built-in models), the families the real recipes' students and teachers come
from can be built the same way (`TinySpec.family`), each with its family's BPE pre-tokenizer:
Qwen2 (q/k/v biases, NeoX rotary, tied embeddings), Mistral (untied output, a head size apart
from hidden/heads, Tekken pre-tokenizer) and Granite (its four scaling multipliers, digits split
one by one). They exist to prove the GGUF writer converts each family exactly.

Built-in sizes (both hold a 2,048-token context, as generation prompts are long):

- ``tiny-teacher``: hidden 256, 4 layers, 8 heads (4 KV), vocab 2,048, tied embeddings:
  ~3.4M parameters.
- ``tiny-student``: hidden 128, 4 layers, 4 heads (2 KV), same tokenizer: ~0.9M parameters,
  so LoRA phases run in seconds on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from labdesk.models.chat_template import LAB_CHAT_TEMPLATE
from labdesk.resources import package_file

BuiltinName = Literal["tiny-teacher", "tiny-student"]
TokenizerKind = Literal["spm", "bpe"]
Family = Literal["llama", "qwen2", "mistral", "granite"]

EOS = "<|endoftext|>"
CHAT_MARKERS = ("<|system|>", "<|user|>", "<|assistant|>")
PAD = "<|pad|>"
_BUILD_VERSION = 1
"""Bump when a change here should rebuild models already cached under ``builtin/``."""


@dataclass(frozen=True)
class TinySpec:
    tokenizer: TokenizerKind = "bpe"
    vocab: int = 1024
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int | None = None
    """Default: about 2.75 x hidden, rounded to a multiple of 16."""
    context: int = 2048
    seed: int = 0
    family: Family = "llama"
    head_dim: int | None = None
    """Default: hidden / heads. Mistral Nemo-style models use another size."""
    init_std: float = 0.02
    """Weight scale. transformers' 0.02 gives a tiny model near-uniform attention and logits
    below 1, where a wrong rotary layout hides under 1e-5; 0.2 makes every part show."""


BUILTIN_SPECS: dict[str, TinySpec] = {
    "tiny-teacher": TinySpec(vocab=2048, hidden=256, layers=4, heads=8, kv_heads=4, seed=1),
    "tiny-student": TinySpec(vocab=2048, hidden=128, layers=4, heads=4, kv_heads=2, seed=2),
}


@dataclass(frozen=True)
class BuiltinModel:
    hf_dir: Path
    gguf: Path


def corpus_text() -> str:
    """The plain prose and Q&A text bundled with labdesk."""
    return package_file("tiny_corpus.txt").read_text(encoding="utf-8")


def chat_text(system: str, user: str, answer: str) -> str:
    return f"<|system|>\n{system}\n<|user|>\n{user}\n<|assistant|>\n{answer}{EOS}"


def ensure_builtin(name: BuiltinName, models_dir: Path) -> BuiltinModel:
    """The built-in model `name` under ``models_dir/builtin/<name>/``, built on first use."""
    spec = BUILTIN_SPECS[name]
    final = Path(models_dir) / "builtin" / name
    marker = final / "builtin.json"
    wanted = {"version": _BUILD_VERSION, "spec": asdict(spec)}
    model = BuiltinModel(final / "hf", final / f"{name}.gguf")
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == wanted:
        return model
    final.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: a crash or a concurrent build never leaves half a model.
    work = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=final.parent))
    try:
        build_tiny_model(work / "hf", spec, gguf_path=work / f"{name}.gguf")
        (work / "builtin.json").write_text(json.dumps(wanted), encoding="utf-8")
        if final.exists():
            stale = final.with_name(f".{name}.stale.{os.getpid()}")
            os.replace(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(work, final)
        except OSError:
            if not marker.is_file():  # not a concurrent build winning the race
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return model


def build_tiny_model(
    out_dir: Path,
    spec: TinySpec | None = None,
    *,
    gguf_path: Path | None = None,
    outtype: Literal["f32", "f16", "bf16"] = "f32",
    **overrides: Any,
) -> BuiltinModel:
    """Build a tiny model into `out_dir` (an HF folder) and its GGUF at `gguf_path`.

    `overrides` replace fields of `spec` (e.g. ``tokenizer="spm", hidden=128, layers=4, seed=3``).
    """
    import torch
    from transformers import AutoModelForCausalLM

    from labdesk.export.gguf import convert_model
    from labdesk.hfquiet import quiet_transformers

    spec = TinySpec(**{**asdict(spec or TinySpec()), **overrides})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(spec, out_dir)
    torch.manual_seed(spec.seed)
    model = AutoModelForCausalLM.from_config(_model_config(spec, tokenizer))
    with torch.no_grad():  # biases start at zero; random ones show whether they are converted
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0.0, 0.5)
    quiet_transformers()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    _fix_tokenizer_config(out_dir)
    gguf = gguf_path or out_dir.parent / f"{out_dir.name}.gguf"
    convert_model(out_dir, gguf, outtype=outtype)
    return BuiltinModel(out_dir, gguf)


def _model_config(spec: TinySpec, tokenizer: Any) -> Any:
    """The family's transformers config: what differs between families is what GGUF must carry."""
    from transformers import GraniteConfig, LlamaConfig, MistralConfig, Qwen2Config

    eos, pad = tokenizer.convert_tokens_to_ids(EOS), tokenizer.convert_tokens_to_ids(PAD)
    common: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": spec.hidden,
        "intermediate_size": spec.intermediate or (spec.hidden * 11 // 4 + 15) // 16 * 16,
        "num_hidden_layers": spec.layers,
        "num_attention_heads": spec.heads,
        "num_key_value_heads": spec.kv_heads,
        "max_position_embeddings": spec.context,
        "rms_norm_eps": 1e-5,
        "initializer_range": spec.init_std,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "pad_token_id": pad,
    }
    if spec.head_dim is not None:
        common["head_dim"] = spec.head_dim
    if spec.family == "qwen2":
        # Qwen2.5 0.5B-3B: tied embeddings, rope base 1e6, and embedding rows padded past the
        # tokenizer (151,936 rows for 151,665 tokens) that GGUF must fill with unused tokens.
        rope = {"rope_type": "default", "rope_theta": 1_000_000.0}
        common["vocab_size"] = (len(tokenizer) + 63) // 64 * 64 + 64
        return Qwen2Config(**common, tie_word_embeddings=True, rope_parameters=rope)
    if spec.family == "mistral":
        return MistralConfig(**common, tie_word_embeddings=False, sliding_window=None)
    if spec.family == "granite":  # its four multipliers, each at a value that shows if lost
        return GraniteConfig(
            **common,
            tie_word_embeddings=True,
            embedding_multiplier=2.0,
            residual_multiplier=0.5,
            attention_multiplier=0.5,  # neither 1/head_dim nor 1/sqrt(head_dim): must be written
            logits_scaling=4.0,
        )
    return LlamaConfig(**common, tie_word_embeddings=True)


def _train_tokenizer(spec: TinySpec, out_dir: Path) -> Any:
    from transformers import PreTrainedTokenizerFast

    specials = [EOS, PAD, *CHAT_MARKERS]
    lines = corpus_text().splitlines()
    if spec.tokenizer == "bpe":
        backend = _train_bpe(lines, specials, spec.vocab, spec.family)
    else:
        backend = _train_spm(lines, specials, spec.vocab, spec.seed, out_dir)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=list(CHAT_MARKERS),
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = LAB_CHAT_TEMPLATE
    return tokenizer


def _train_bpe(lines: list[str], specials: list[str], vocab: int, family: Family) -> Any:
    """A byte-level BPE (llama.cpp's "gpt2" tokenizer) with the family's pre-tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    if family == "qwen2":
        from tokenizers import normalizers

        tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = _bpe_pre_tokenizer(family)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Newlines matter to the chat format, so train on text that has them.
    tokenizer.train_from_iterator([line + "\n" for line in lines], trainer)
    return tokenizer


def _bpe_pre_tokenizer(family: Family) -> Any:
    """How each family splits text before BPE, as its published tokenizer.json has it."""
    from tokenizers import Regex, pre_tokenizers

    from labdesk.export.gguf_tokenizer import QWEN2_REGEX, TEKKEN_REGEX

    def split_then_bytes(regex: str) -> Any:
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )

    if family == "qwen2":
        return split_then_bytes(QWEN2_REGEX)
    if family == "mistral":
        return split_then_bytes(TEKKEN_REGEX)
    if family == "granite":
        return pre_tokenizers.Sequence(
            [
                pre_tokenizers.Digits(individual_digits=True),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
            ]
        )
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)  # GPT-2's


def _train_spm(lines: list[str], specials: list[str], vocab: int, seed: int, out_dir: Path) -> Any:
    """A SentencePiece BPE model (llama.cpp's "llama" tokenizer) and its tokenizers twin.

    Traps avoided: chat markers are `control_symbols` (user-defined ones become normal tokens in
    GGUF); normalization is "identity" (nmt_nfkc turns newlines into spaces); no dummy prefix,
    and the GGUF says so, because llama.cpp would otherwise add a space after every marker.
    Newlines fall back to byte tokens in both libraries.
    """
    import io

    import sentencepiece as spm
    from tokenizers import Tokenizer, decoders, models, normalizers

    stream = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=stream,
        model_type="bpe",
        vocab_size=vocab,
        character_coverage=1.0,
        byte_fallback=True,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        split_digits=True,
        unk_id=0,
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        control_symbols=specials,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    (out_dir / "tokenizer.model").write_bytes(stream.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=stream.getvalue())
    pieces = {processor.id_to_piece(i): i for i in range(processor.vocab_size())}
    scores = {
        processor.id_to_piece(i): processor.get_score(i) for i in range(processor.vocab_size())
    }
    # SentencePiece BPE merges greedily by the score of the merged piece; as ranked merges that
    # is: every split of a normal piece into two known pieces, ordered by the piece's score.
    merges = sorted(
        (
            (scores[piece], piece[:k], piece[k:])
            for piece, pid in pieces.items()
            if not (
                processor.is_control(pid) or processor.is_byte(pid) or processor.is_unknown(pid)
            )
            for k in range(1, len(piece))
            if piece[:k] in pieces and piece[k:] in pieces
        ),
        key=lambda merge: -merge[0],
    )
    backend = Tokenizer(
        models.BPE(
            vocab=pieces,
            merges=[(a, b) for _, a, b in merges],
            unk_token="<unk>",
            byte_fallback=True,
            fuse_unk=True,
        )
    )
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    )
    backend.add_special_tokens(specials)
    return backend


def _fix_tokenizer_config(out_dir: Path) -> None:
    """Say plainly that no BOS is added (Granite style), for transformers and the GGUF alike."""
    path = out_dir / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update(add_bos_token=False, add_eos_token=False)
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
