"""Will a model fit? Estimate what llama.cpp will allocate and compare with what is free.

Asking llama.cpp to load a model that does not fit ends in a swap storm or an out-of-memory
kill, with nothing saved. The estimate is deliberately simple and a little generous: weights,
KV cache for every sequence's context, and the compute buffers for one batch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass

from labdesk.errors import ModelError
from labdesk.models.ggufinfo import GGUFInfo

# Compute buffers, scratch and runtime overhead beyond weights + KV + logits.
_OVERHEAD_BYTES = 64 * 1024**2


@dataclass(frozen=True)
class MemoryPlan:
    weights: int
    kv_cache: int
    compute: int
    device: str  # "cpu", "cuda" or "metal": where the weights go

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute


def plan_memory(info: GGUFInfo, *, n_ctx_total: int, n_batch: int, device: str) -> MemoryPlan:
    logits = info.n_vocab * n_batch * 4
    activations = info.n_embd * n_batch * 4 * 8
    return MemoryPlan(
        weights=info.weight_bytes,
        kv_cache=info.kv_bytes_per_token() * n_ctx_total,
        compute=logits + activations + _OVERHEAD_BYTES,
        device=device,
    )


def available_ram() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def available_cuda_vram() -> int | None:
    """Free memory on the first CUDA GPU from nvidia-smi; None when it cannot be asked."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(out.split()[0]) * 1024**2
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def gpu_device() -> str:
    """'metal' on macOS, else 'cuda' (the GPU builds llama-cpp-python is made with)."""
    return "metal" if sys.platform == "darwin" else "cuda"


def check_fits(plan: MemoryPlan, *, where: str, free_bytes: int | None = None) -> None:
    """Raise ModelError when `plan` cannot fit in the free memory of its device."""
    if free_bytes is None:
        free_bytes = available_cuda_vram() if plan.device == "cuda" else available_ram()
    if free_bytes is None:  # unknown (no nvidia-smi): let llama.cpp try
        return
    if plan.total > free_bytes:
        raise ModelError(
            f"model needs about {_gib(plan.total)} "
            f"(weights {_gib(plan.weights)} + KV cache {_gib(plan.kv_cache)} + buffers "
            f"{_gib(plan.compute)}) but only {_gib(free_bytes)} of {plan.device.upper()} "
            "memory is free",
            where=where,
            hint="pick a smaller or more quantized model (a recipe for your hardware), or lower "
            "engine.n_ctx / engine.parallel",
        )


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB"
