"""Will this phase fit? A peak-memory estimate from the student's config, before loading it.

The estimate counts the frozen weights at their precision, the LoRA parameters with their
gradients and AdamW moments (fp32), the activations kept for backward (all layers, or one
hidden state per layer plus one layer's worth with gradient checkpointing) and the logits.
It is deliberately a little pessimistic: an OOM an hour into a run costs more than a smaller
batch.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.recipes import PhaseSettings, TrainSettings

GIB = 2**30


@dataclass(frozen=True)
class MemoryPlan:
    weights: float
    lora: float
    activations: float
    logits: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.lora + self.activations + self.logits + self.overhead


def estimate(
    config: dict[str, Any], settings: TrainSettings, phase: PhaseSettings, device: str
) -> MemoryPlan:
    """Bytes needed at peak for one micro-batch of `phase.batch_tokens` tokens."""
    h = int(config["hidden_size"])
    layers = int(config["num_hidden_layers"])
    inter = int(config.get("intermediate_size", 4 * h))
    vocab = int(config["vocab_size"])
    heads = int(config.get("num_attention_heads", 1))
    kv = int(config.get("num_key_value_heads", heads))
    head_dim = int(config.get("head_dim") or h // heads)
    q_out, kv_out = heads * head_dim, kv * head_dim
    per_layer = h * q_out + 2 * h * kv_out + q_out * h + 3 * h * inter
    embed = vocab * h * (1 if config.get("tie_word_embeddings") else 2)
    params = layers * per_layer + embed
    # nf4 with double quant ≈ 0.53 byte/param on linear layers; embeddings stay 16-bit.
    if settings.quantize_4bit:
        weights = layers * per_layer * 0.53 + embed * 2
    else:
        weights = params * (2 if device == "cuda" else 4)
    lora_params = (
        layers
        * settings.lora_rank
        * ((h + q_out) + 2 * (h + kv_out) + (q_out + h) + 3 * (h + inter))
    )
    lora = lora_params * 4 * 4  # weights, grads, two AdamW moments in fp32
    act_bytes = 2 if device == "cuda" else 4
    tokens = phase.batch_tokens
    # Saved tensors per token per layer: norms, q/k/v/o, attention output, MLP gates (≈ 10h + 4i).
    per_token_layer = (10 * h + 4 * inter) * act_bytes
    if settings.gradient_checkpointing:
        activations = tokens * (layers * h * act_bytes + per_token_layer)
    else:
        activations = tokens * layers * per_token_layer
    # Attention scores materialise (tokens × row) when no fused kernel: count one layer's worth.
    row = min(tokens, settings.max_seq_len)
    activations += heads * tokens * row * act_bytes
    logits = tokens * vocab * 4 * 3  # fp32 logits, their softmax and gradient
    overhead = 0.5 * GIB if device == "cuda" else 0.3 * GIB
    return MemoryPlan(weights, lora, activations, logits, overhead)


def available_bytes(device: str) -> float:
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return float(free)
    if sys.platform.startswith("linux"):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return float(line.split()[1]) * 1024
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return float(pages) * 0.75  # unified memory: leave the OS and the GPU share their room


def suggestions(settings: TrainSettings, phase: PhaseSettings, plan: MemoryPlan) -> list[str]:
    tips: list[str] = []
    if plan.activations + plan.logits > plan.weights:
        tips.append(
            f"halve train.phases[{phase.name}].batch_tokens to {phase.batch_tokens // 2} "
            "(effective_batch_tokens stays, via accumulation)"
        )
        tips.append(f"lower train.max_seq_len (now {settings.max_seq_len})")
    if not settings.gradient_checkpointing:
        tips.append("set train.gradient_checkpointing: true")
    if not settings.quantize_4bit:
        tips.append("set train.quantize_4bit: true (QLoRA)")
    return tips


def check_fits(
    model_dir: Path,
    settings: TrainSettings,
    phase: PhaseSettings,
    reporter: Reporter = null_reporter,
    device: str | None = None,
    available: float | None = None,
) -> MemoryPlan:
    """Raise a ModelError that says what to change if the phase will not fit in memory."""
    try:
        config: dict[str, Any] = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the student's config: {exc}", where=str(model_dir)) from None
    config = config.get("text_config", config)
    if device is None:
        from labdesk.train.torch_backend import pick_device

        device = pick_device() if settings.backend != "mlx" else "cpu"
    plan = estimate(config, settings, phase, device)
    room = available if available is not None else available_bytes(device)
    reporter(
        Event(
            "train",
            "message",
            f"{phase.name}: needs about {plan.total / GIB:.1f} GiB of {room / GIB:.1f} GiB free",
            step=phase.name,
            metrics={"memory_needed_gb": plan.total / GIB, "memory_free_gb": room / GIB},
        )
    )
    if plan.total > room:
        raise ModelError(
            f"{phase.name} needs about {plan.total / GIB:.1f} GiB but {room / GIB:.1f} GiB is free "
            f"on {device} (weights {plan.weights / GIB:.1f}, activations "
            f"{plan.activations / GIB:.1f}, logits {plan.logits / GIB:.1f})",
            where=str(model_dir),
            hint="; or ".join(suggestions(settings, phase, plan)) or "use a smaller student",
        )
    return plan
