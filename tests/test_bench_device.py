"""bench/device.py is meant for a lent CUDA machine: here, without one, it must say so and exit
cleanly, and each of its measurements must run (on the CPU, on a tiny Llama GGUF written by
labdesk), so the device's minutes are not spent finding a typo."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "device.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_device", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_it_says_so_and_exits_cleanly() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the script would measure instead")
    result = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == _bench().NO_CUDA


@pytest.mark.slow
def test_each_measurement_runs_on_the_cpu(tmp_path: Path) -> None:
    from labdesk.models.gguf_student import convert
    from labdesk.tinymodels import build_tiny_model

    bench = _bench()
    gguf = build_tiny_model(tmp_path / "tiny" / "hf", tokenizer="spm", seed=6).gguf
    student = tmp_path / "student"
    convert(gguf, student)  # as the script makes its student from the GGUF
    qlora = bench.train_row(student, True, steps=3, batch_tokens=256)
    assert qlora["path"] == "QLoRA nf4" and qlora["steps"] == 3
    assert qlora["tokens_per_s"] > 0 and qlora["planned_gib"] > 0
    row = bench.generate_row(gguf, 0, requests=4, max_tokens=8, parallel=2)
    assert row["tokens_per_s"] > 0 and row["requests"] == 4
    text = bench.table("t", [qlora])
    assert "QLoRA nf4" in text and "tokens_per_s" in text
