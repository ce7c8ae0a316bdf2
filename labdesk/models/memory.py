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
    device: str  # "cpu", "cuda" or "metal": where offloaded layers go
    gpu_share: float = 0.0  # fraction of the layers (and their KV cache) on that GPU

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute

    @property
    def vram(self) -> int:
        """Bytes in dedicated GPU memory (Metal shares the system RAM, so none)."""
        return int(self.total * self.gpu_share) if self.device == "cuda" else 0

    @property
    def ram(self) -> int:
        return self.total - self.vram


def plan_memory(
    info: GGUFInfo, *, n_ctx_total: int, n_batch: int, gpu_layers: int = 0
) -> MemoryPlan:
    logits = info.n_vocab * n_batch * 4
    activations = info.n_embd * n_batch * 4 * 8
    share = min(gpu_layers, info.n_layer) / max(info.n_layer, 1)
    return MemoryPlan(
        weights=info.weight_bytes,
        kv_cache=info.kv_bytes_per_token() * n_ctx_total,
        compute=logits + activations + _OVERHEAD_BYTES,
        device=gpu_device() if gpu_layers > 0 else "cpu",
        gpu_share=share,
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


def check_fits(
    plan: MemoryPlan, *, where: str, free_ram: int | None = None, free_vram: int | None = None
) -> None:
    """Raise ModelError when `plan` cannot fit in free GPU memory or free RAM."""
    if plan.vram:
        free_vram = available_cuda_vram() if free_vram is None else free_vram
        if free_vram is not None:  # unknown (no nvidia-smi): let llama.cpp try
            _refuse_over(plan, plan.vram, free_vram, "CUDA", where)
    _refuse_over(plan, plan.ram, available_ram() if free_ram is None else free_ram, "RAM", where)


def _refuse_over(plan: MemoryPlan, need: int, free: int, memory: str, where: str) -> None:
    if need <= free:
        return
    raise ModelError(
        f"model needs about {_gib(need)} of {memory} (weights {_gib(plan.weights)} + KV cache "
        f"{_gib(plan.kv_cache)} + buffers {_gib(plan.compute)} in all) but only {_gib(free)} "
        "is free",
        where=where,
        hint="pick a smaller or more quantized model (a recipe for your hardware), or lower "
        "engine.n_ctx / engine.parallel" + (" / engine.n_gpu_layers" if memory == "CUDA" else ""),
    )


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB"
