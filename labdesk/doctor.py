"""`labdesk doctor`: what this machine is, which recipe fits it, and what to install or change.

Detection goes through a `Probe` so the same logic is tested on this machine and on faked CUDA
and Apple Silicon reports; the probe reads the system without importing torch or llama_cpp's
model code (package versions come from metadata).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labdesk.memory import Hardware, StagePlan
    from labdesk.recipes import Recipe

GB = 1024**3

# distribution name → what it gives labdesk
BACKENDS = {
    "llama-cpp-python": "teacher, judge and chat (llama.cpp)",
    "torch": "training (LoRA / QLoRA)",
    "transformers": "training and merging",
    "peft": "LoRA adapters",
    "bitsandbytes": "4-bit QLoRA on CUDA",
    "mlx-lm": "LoRA on Apple Silicon",
    "textual": "the terminal app",
}


@dataclass(frozen=True)
class Gpu:
    name: str
    vram_gb: float


@dataclass(frozen=True)
class DeviceReport:
    os: str
    arch: str
    cpu: str
    cores: int
    ram_gb: float
    disk_free_gb: float
    gpus: tuple[Gpu, ...] = ()
    apple_silicon: bool = False
    packages: dict[str, str | None] = field(default_factory=dict)
    llama_gpu_offload: bool = False
    """Whether the installed llama.cpp build can offload layers to a GPU (CUDA or Metal)."""
    ram_free_gb: float = 0.0
    vram_free_gb: float | None = None
    """Free memory of the first CUDA GPU; None without one."""

    @property
    def vram_gb(self) -> float:
        return max((g.vram_gb for g in self.gpus), default=0.0)

    @property
    def torch_cuda(self) -> bool:
        version = self.packages.get("torch") or ""
        return bool(version) and "+cpu" not in version and self.os == "Linux"


class Probe:
    """Reads the real system. Tests subclass it to fake other machines."""

    def system(self) -> str:
        return platform.system()

    def machine(self) -> str:
        return platform.machine()

    def cpu_name(self) -> str:
        with contextlib.suppress(OSError):
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        if self.system() == "Darwin":
            return self._run(["sysctl", "-n", "machdep.cpu.brand_string"]) or platform.processor()
        return platform.processor() or "unknown"

    def cpu_count(self) -> int:
        return os.cpu_count() or 1

    def ram_bytes(self) -> int:
        if self.system() == "Darwin":
            return int(self._run(["sysctl", "-n", "hw.memsize"]) or 0)
        with contextlib.suppress(ValueError, OSError, AttributeError):
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return 0

    def nvidia_smi(self) -> str | None:
        """CSV lines ``name, memory.total [MiB]``, or None without an NVIDIA driver."""
        if not shutil.which("nvidia-smi"):
            return None
        return self._run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
        )

    def ram_free_bytes(self) -> int:
        from labdesk.memory import available_ram

        return available_ram()

    def vram_free_bytes(self) -> int | None:
        from labdesk.memory import available_vram

        return available_vram()

    def disk_free_bytes(self, path: Path) -> int:
        while not path.exists() and path != path.parent:
            path = path.parent
        return shutil.disk_usage(path).free

    def package_version(self, dist: str) -> str | None:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return None

    def llama_gpu_offload(self) -> bool:
        try:
            import llama_cpp
        except ImportError:
            return False
        return bool(llama_cpp.llama_supports_gpu_offload())

    @staticmethod
    def _run(cmd: list[str]) -> str | None:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()


def detect(workspace_home: Path, probe: Probe | None = None) -> DeviceReport:
    probe = probe or Probe()
    system, arch = probe.system(), probe.machine()
    gpus = []
    for line in (probe.nvidia_smi() or "").splitlines():
        name, _, mib = line.rpartition(",")
        with contextlib.suppress(ValueError):
            gpus.append(Gpu(name.strip(), round(float(mib) / 1024, 1)))
    return DeviceReport(
        os=system,
        arch=arch,
        cpu=probe.cpu_name(),
        cores=probe.cpu_count(),
        ram_gb=round(probe.ram_bytes() / GB, 1),
        disk_free_gb=round(probe.disk_free_bytes(workspace_home) / GB, 1),
        gpus=tuple(gpus),
        apple_silicon=system == "Darwin" and arch == "arm64",
        packages={dist: probe.package_version(dist) for dist in BACKENDS},
        llama_gpu_offload=probe.llama_gpu_offload(),
        ram_free_gb=round(probe.ram_free_bytes() / GB, 2),
        vram_free_gb=None if (free := probe.vram_free_bytes()) is None else round(free / GB, 2),
    )


def pick_recipe(report: DeviceReport) -> tuple[str, str]:
    """The packaged recipe that fits this machine, and why."""
    if report.gpus:
        if report.vram_gb >= 20:
            return "cuda-24gb", f"{report.gpus[0].name} with {report.vram_gb:g} GB VRAM"
        if report.vram_gb >= 7:
            return "cuda-8gb", f"{report.gpus[0].name} with {report.vram_gb:g} GB VRAM (7B QLoRA)"
    if report.apple_silicon and report.ram_gb >= 15:
        return "apple-16gb", f"Apple Silicon with {report.ram_gb:g} GB unified memory (MLX)"
    if report.ram_gb >= 12:
        return "cpu", f"no usable GPU; {report.ram_gb:g} GB RAM fits small models on the CPU"
    return "demo", f"only {report.ram_gb:g} GB RAM and no GPU: the tiny demo models"


def advice(report: DeviceReport) -> list[str]:
    """What to install or change, each with the exact command."""
    tips: list[str] = []
    missing = [dist for dist, version in report.packages.items() if version is None]
    core_missing = [d for d in missing if d not in ("bitsandbytes", "mlx-lm")]
    if core_missing:
        tips.append(f"missing {', '.join(core_missing)}: reinstall labdesk (`pip install labdesk`)")
    if report.gpus and not report.llama_gpu_offload:
        tips.append(
            "llama-cpp-python was built without CUDA, so the teacher runs on the CPU; rebuild it:"
            ' CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
        )
    if report.gpus and not report.torch_cuda:
        tips.append(
            "torch is a CPU build, so training ignores the GPU; install a CUDA build:"
            " pip install --force-reinstall torch --index-url https://download.pytorch.org/whl/cu128"
        )
    if report.gpus and "bitsandbytes" in missing:
        tips.append("bitsandbytes is missing, so 4-bit QLoRA is off: pip install bitsandbytes")
    if report.apple_silicon:
        if not report.llama_gpu_offload:
            tips.append(
                "llama-cpp-python was built without Metal; rebuild it:"
                ' CMAKE_ARGS="-DGGML_METAL=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
            )
        if "mlx-lm" in missing:
            tips.append(
                "mlx-lm is missing, so training falls back to torch on the CPU: pip install mlx-lm"
            )
    if report.disk_free_gb < 30:
        tips.append(
            f"only {report.disk_free_gb:g} GB free in the workspace: real recipes need ~30 GB"
            " (teacher GGUF, student weights, checkpoints, exports); set LABDESK_HOME to a bigger disk"
        )
    return tips


def hardware(report: DeviceReport, recipe: Recipe) -> Hardware:
    """What a run of `recipe` started now would find on the reported machine (no torch import)."""
    from labdesk.memory import Hardware
    from labdesk.train.phases import choose_backend

    if choose_backend(recipe.train) == "mlx":
        train_device = "mlx"
    else:
        train_device = "cuda" if report.gpus and report.torch_cuda else "cpu"
    vram = None if report.vram_free_gb is None else int(report.vram_free_gb * GB)
    return Hardware(int(report.ram_free_gb * GB), vram, report.llama_gpu_offload, train_device)


def memory_advice(recipe: str, plans: list[StagePlan], hw: Hardware) -> list[str]:
    """Per stage: what will not fit now and what to change, or what runs partly on the CPU."""
    from labdesk.errors import ModelError

    tips: list[str] = []
    missing = list(dict.fromkeys(m for plan in plans for m in plan.missing))
    if missing:
        unplanned = ", ".join(plan.stage for plan in plans if plan.missing)
        tips.append(
            f"no memory plan for {unplanned} until its models are here "
            f"(`labdesk models pull {recipe}`): {'; '.join(missing)}"
        )
    for plan in plans:
        if plan.missing:
            continue
        try:
            plan.check(hw, where=recipe)
        except ModelError as exc:
            tips.append(f"{exc.message}: {exc.hint}" if exc.hint else exc.message)
        tips.extend(plan.advice)
    return tips
