"""Check a GGUF file and read what the runtime needs from it, before llama.cpp ever sees it.

llama.cpp aborts the whole process on some malformed files, so every file is validated here
first: magic, header, tensor data extents against the file size, and a known architecture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labdesk.errors import ModelError

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class GGUFInfo:
    """What the engine needs to know about a model file before loading it."""

    path: Path
    architecture: str
    name: str | None
    """`general.name` (or `general.basename`): how the file names its model family."""
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ctx_train: int
    n_vocab: int
    weight_bytes: int
    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    head_dim: int = 0
    """K/V width of one head; 0: n_embd / n_head (wider in e.g. Mistral Nemo)."""
    n_ff: int = 0
    """Feed-forward width (0: not recorded)."""
    tied: bool = True
    """The output layer reuses the token embeddings (no `output.weight` tensor)."""

    def as_config(self) -> dict[str, Any]:
        """The model's shape as a Hugging Face config.json would give it (for memory plans)."""
        return {
            "model_type": self.architecture,
            "hidden_size": self.n_embd,
            "num_hidden_layers": self.n_layer,
            "num_attention_heads": self.n_head,
            "num_key_value_heads": self.n_head_kv,
            "head_dim": self.head_dim or self.n_embd // max(self.n_head, 1),
            "intermediate_size": self.n_ff or 4 * self.n_embd,
            "vocab_size": self.n_vocab,
            "tie_word_embeddings": self.tied,
            "max_position_embeddings": self.n_ctx_train,
        }

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        """K and V for every layer (f16 cache by default)."""
        head_dim = self.head_dim or self.n_embd // max(self.n_head, 1)
        return 2 * self.n_layer * self.n_head_kv * head_dim * bytes_per_value


def _known_architectures() -> set[str]:
    import gguf

    return set(gguf.MODEL_ARCH_NAMES.values())


def read_gguf(path: Path) -> GGUFInfo:
    """Validate `path` as a loadable GGUF model; raise ModelError saying what is wrong."""
    where = str(path)
    if not path.is_file():
        raise ModelError("model file not found", where=where, hint="check the path or pull it")
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
    if head[:4] != GGUF_MAGIC:
        raise ModelError(
            "not a GGUF file (bad magic bytes)",
            where=where,
            hint="point at a .gguf model file; HF weight folders must be converted first",
        )
    import gguf

    try:
        reader = gguf.GGUFReader(path, "r")
    except Exception as exc:  # the reader raises many kinds on a truncated or garbled header
        raise ModelError(
            f"GGUF header cannot be read ({type(exc).__name__}: {exc})",
            where=where,
            hint="the file is corrupt or truncated: download it again (`labdesk models pull`)",
        ) from None
    weight_bytes = 0
    for tensor in reader.tensors:
        end = int(tensor.data_offset) + int(tensor.n_bytes)
        if end > size:
            raise ModelError(
                f"tensor '{tensor.name}' ends at byte {end} but the file has only {size} bytes",
                where=where,
                hint="the file is truncated: download it again (`labdesk models pull`)",
            )
        weight_bytes += int(tensor.n_bytes)
    fields = {name: _field_value(field) for name, field in reader.fields.items()}
    arch = fields.get("general.architecture")
    if not isinstance(arch, str):
        raise ModelError("GGUF has no general.architecture", where=where)
    if arch not in _known_architectures():
        raise ModelError(
            f"unknown model architecture '{arch}'",
            where=where,
            hint="use a model of an architecture llama.cpp supports (llama, qwen2, mistral, …)",
        )
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    if tokens is None or not reader.tensors:
        raise ModelError(
            "GGUF has no tokenizer or no tensors (vocab-only or partial file)", where=where
        )
    try:
        n_layer = int(fields[f"{arch}.block_count"])
        n_embd = int(fields[f"{arch}.embedding_length"])
    except KeyError as exc:
        raise ModelError(f"GGUF lacks required key {exc}", where=where) from None
    n_head = _as_int(fields.get(f"{arch}.attention.head_count"), 1)
    token_list = fields.get("tokenizer.ggml.tokens")
    vocab = token_list if isinstance(token_list, list) else []

    def special(key: str) -> str | None:
        index = fields.get(f"tokenizer.ggml.{key}_token_id")
        if isinstance(index, int) and 0 <= index < len(vocab):
            return str(vocab[index])
        return None

    template = fields.get("tokenizer.chat_template")
    return GGUFInfo(
        path=path,
        architecture=arch,
        name=next(
            (
                v
                for k in ("general.name", "general.basename")
                if isinstance(v := fields.get(k), str)
            ),
            None,
        ),
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=_as_int(fields.get(f"{arch}.attention.head_count_kv"), n_head),
        n_ctx_train=_as_int(fields.get(f"{arch}.context_length"), 0),
        n_vocab=len(vocab),
        weight_bytes=weight_bytes,
        chat_template=template if isinstance(template, str) else None,
        bos_token=special("bos"),
        eos_token=special("eos"),
        head_dim=_as_int(fields.get(f"{arch}.attention.key_length"), 0),
        n_ff=_as_int(fields.get(f"{arch}.feed_forward_length"), 0),
        tied=all(tensor.name != "output.weight" for tensor in reader.tensors),
    )


def _field_value(field: Any) -> Any:
    try:
        return field.contents()
    except Exception:  # a value the reader can't decode is as good as absent for us
        return None


def _as_int(value: Any, default: int) -> int:
    """An int field; per-layer arrays (some architectures) count by their largest entry."""
    if isinstance(value, list):
        value = max((v for v in value if isinstance(v, int)), default=None)
    return int(value) if isinstance(value, int) and value > 0 else default
