from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from labdesk.doctor import Probe, advice, detect, pick_recipe


class FakeProbe(Probe):
    """A machine described by numbers: everything the real probe would read."""

    def __init__(
        self,
        *,
        system: str,
        machine: str,
        ram_gb: float,
        smi: str | None = None,
        packages: dict[str, str | None] | None = None,
        offload: bool = False,
        disk_gb: float = 500,
    ) -> None:
        self._system, self._machine, self._ram = system, machine, ram_gb
        self._smi, self._offload, self._disk = smi, offload, disk_gb
        self._packages = packages or {}

    def system(self) -> str:
        return self._system

    def machine(self) -> str:
        return self._machine

    def cpu_name(self) -> str:
        return "Fake CPU"

    def cpu_count(self) -> int:
        return 8

    def ram_bytes(self) -> int:
        return int(self._ram * 1024**3)

    def nvidia_smi(self) -> str | None:
        return self._smi

    def disk_free_bytes(self, path: Path) -> int:
        return int(self._disk * 1024**3)

    def package_version(self, dist: str) -> str | None:
        return self._packages.get(dist, "1.0")

    def llama_gpu_offload(self) -> bool:
        return self._offload


def test_this_machine(tmp_path: Path) -> None:
    report = detect(tmp_path)
    assert report.cores >= 1 and report.ram_gb > 0 and report.disk_free_gb > 0
    assert report.packages["llama-cpp-python"] is not None
    assert report.gpus == ()  # CI machines have no GPU
    recipe, why = pick_recipe(report)
    assert recipe in ("cpu", "demo") and "no" in why


def test_cuda_machine_with_cpu_builds_gets_exact_reinstall_commands(tmp_path: Path) -> None:
    probe = FakeProbe(
        system="Linux",
        machine="x86_64",
        ram_gb=64,
        smi="NVIDIA GeForce RTX 4090, 24564\n",
        packages={"torch": "2.13.0+cpu", "bitsandbytes": None},
    )
    report = detect(tmp_path, probe)
    assert report.gpus[0].name == "NVIDIA GeForce RTX 4090" and report.vram_gb == 24.0
    assert pick_recipe(report)[0] == "cuda-24gb"
    tips = "\n".join(advice(report))
    assert (
        'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir llama-cpp-python'
        in tips
    )
    assert "torch is a CPU build" in tips
    assert "pip install bitsandbytes" in tips


def test_small_cuda_card_picks_qlora_recipe(tmp_path: Path) -> None:
    probe = FakeProbe(
        system="Linux",
        machine="x86_64",
        ram_gb=32,
        smi="NVIDIA RTX 3070, 8192\n",
        packages={"torch": "2.13.0+cu128"},
        offload=True,
    )
    report = detect(tmp_path, probe)
    assert pick_recipe(report)[0] == "cuda-8gb"
    assert advice(report) == []


def test_apple_silicon(tmp_path: Path) -> None:
    probe = FakeProbe(
        system="Darwin", machine="arm64", ram_gb=16, packages={"mlx-lm": None}, disk_gb=12
    )
    report = detect(tmp_path, probe)
    assert report.apple_silicon and report.gpus == ()
    assert pick_recipe(report)[0] == "apple-16gb"
    tips = "\n".join(advice(report))
    assert "-DGGML_METAL=on" in tips
    assert "pip install mlx-lm" in tips
    assert "only 12 GB free" in tips


def test_low_memory_laptop_gets_demo(tmp_path: Path) -> None:
    report = detect(tmp_path, FakeProbe(system="Linux", machine="x86_64", ram_gb=8))
    assert pick_recipe(report)[0] == "demo"


def test_cli_json(workspace_home: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "labdesk", "doctor", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["recipe"] in ("cpu", "demo")
    assert data["gpus"] == []
    assert isinstance(data["advice"], list)
