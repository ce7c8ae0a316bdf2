"""What a Hugging Face ``config.json`` means in GGUF: architecture, metadata and tensor layout.

Only the Llama family labdesk's recipes use is supported; anything else is refused up front with
a clear error rather than written as a file llama.cpp would load and run wrongly.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gguf
import numpy as np

from labdesk.errors import ModelError

if TYPE_CHECKING:
    from labdesk.export.checkpoint import Checkpoint

# HF model_type → GGUF architecture. Mistral is a Llama to llama.cpp.
_ARCHES = {
    "llama": gguf.MODEL_ARCH.LLAMA,
    "mistral": gguf.MODEL_ARCH.LLAMA,
    "granite": gguf.MODEL_ARCH.GRANITE,
    "qwen2": gguf.MODEL_ARCH.QWEN2,
}
# Qwen2 checkpoints already use llama.cpp's rotary layout (NeoX style); the others interleave.
_NO_QK_PERMUTE = {"qwen2"}


@dataclass(frozen=True)
class ModelSpec:
    """The parts of a model's config the converter needs, read once from ``config.json``."""

    model_type: str
    arch: gguf.MODEL_ARCH
    config: dict[str, Any]
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim: int
    vocab_size: int
    permute_qk: bool

    @property
    def arch_name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.arch]

    def tensor_map(self) -> gguf.TensorNameMap:
        return gguf.get_tensor_name_map(self.arch, self.n_layer)

    def rope(self) -> dict[str, Any]:
        """Rope settings from either transformers 5 (`rope_parameters`) or 4 (`rope_scaling`)."""
        params = dict(self.config.get("rope_parameters") or {})
        params.update(self.config.get("rope_scaling") or {})
        params.setdefault("rope_theta", self.config.get("rope_theta", 10000.0))
        params.setdefault("rope_type", params.get("type", "default"))
        return params


def read_spec(model_dir: Path) -> ModelSpec:
    config_file = model_dir / "config.json"
    if not config_file.is_file():
        raise ModelError(
            "no config.json: not a Hugging Face model folder",
            where=str(model_dir),
            hint="point at the folder save_pretrained() wrote",
        )
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"config.json is not valid JSON: {exc}", where=str(config_file)) from exc
    model_type = str(config.get("model_type", ""))
    if model_type not in _ARCHES:
        raise ModelError(
            f"architecture {model_type or '(none)'!r} is not supported for GGUF export",
            where=str(config_file),
            hint=f"supported model_type values: {', '.join(sorted(_ARCHES))}",
        )
    try:
        n_head = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        spec = ModelSpec(
            model_type=model_type,
            arch=_ARCHES[model_type],
            config=config,
            n_layer=int(config["num_hidden_layers"]),
            n_head=n_head,
            n_head_kv=int(config.get("num_key_value_heads") or n_head),
            head_dim=int(config.get("head_dim") or hidden // n_head),
            vocab_size=int(config["vocab_size"]),
            permute_qk=model_type not in _NO_QK_PERMUTE,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"config.json lacks a usable {exc}", where=str(config_file)) from exc
    rope_type = spec.rope()["rope_type"]
    if rope_type not in ("default", "linear", "llama3"):
        raise ModelError(
            f"rope scaling {rope_type!r} is not supported for GGUF export",
            where=str(config_file),
            hint="supported: default, linear, llama3",
        )
    return spec


def add_metadata(writer: gguf.GGUFWriter, spec: ModelSpec, name: str) -> None:
    """Write the hyper-parameters llama.cpp reads for this architecture."""
    c = spec.config
    writer.add_name(name)
    writer.add_context_length(int(c.get("max_position_embeddings", 2048)))
    writer.add_embedding_length(int(c["hidden_size"]))
    writer.add_block_count(spec.n_layer)
    writer.add_feed_forward_length(int(c["intermediate_size"]))
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head_kv)
    writer.add_key_length(spec.head_dim)
    writer.add_value_length(spec.head_dim)
    writer.add_rope_dimension_count(spec.head_dim)
    writer.add_layer_norm_rms_eps(float(c.get("rms_norm_eps", 1e-6)))
    writer.add_vocab_size(spec.vocab_size)
    rope = spec.rope()
    writer.add_rope_freq_base(float(rope["rope_theta"]))
    if rope["rope_type"] == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(rope["factor"]))
    if spec.arch == gguf.MODEL_ARCH.GRANITE:
        writer.add_embedding_scale(float(c.get("embedding_multiplier", 1.0)))
        writer.add_residual_scale(float(c.get("residual_multiplier", 1.0)))
        writer.add_attention_scale(float(c.get("attention_multiplier", 1.0 / spec.head_dim)))
        writer.add_logit_scale(float(c.get("logits_scaling", 1.0)))


def llama3_rope_factors(spec: ModelSpec) -> np.ndarray | None:
    """Per-frequency divisors llama.cpp needs as the `rope_freqs` tensor for Llama 3.1+ rope."""
    rope = spec.rope()
    if rope["rope_type"] != "llama3":
        return None
    dim = spec.head_dim
    freqs = 1.0 / (float(rope["rope_theta"]) ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old_ctx = float(rope.get("original_max_position_embeddings", 8192))
    factors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            factors.append(1.0)
        elif wavelen > old_ctx / low:
            factors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            factors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(factors, dtype=np.float32)


def permute_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder q/k output rows from HF's half-split rotary layout to llama.cpp's interleaved one."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_head, 2, rows // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def load_permuted(checkpoint: Checkpoint, name: str, heads: int | None) -> np.ndarray:
    """Read a tensor, permuting its rows for `heads` heads when it is a q/k projection (or B)."""
    data = checkpoint.read(name)
    return permute_rows(data, heads) if heads else data


def qk_heads(spec: ModelSpec, hf_name: str) -> int | None:
    """How many heads to permute `hf_name`'s rows by, or None when it needs no permutation."""
    if not spec.permute_qk:
        return None
    if ".q_proj." in hf_name:
        return spec.n_head
    if ".k_proj." in hf_name:
        return spec.n_head_kv
    return None
