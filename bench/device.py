"""On a CUDA GPU: labdesk's QLoRA path and its generation engine, tokens/s and peak VRAM each,
beside what labdesk's own memory plan expected.

- train: the real torch phase trainer (`labdesk.train.torch_backend.train_phase`) on a small real
  student for a few optimizer steps: bitsandbytes nf4 + LoRA (QLoRA), then plain bf16 LoRA for
  comparison. Peak VRAM is torch's own count (max allocated, and reserved by its cache).
- generate: the engine (`labdesk.models.engine.Engine`, batched decoding over `--parallel`
  sequences) on a GGUF with every layer on the GPU, then on the CPU only. llama.cpp's memory is
  not torch's: its peak is sampled from nvidia-smi while it runs (used now minus used before).

It runs offline from the repository. Everything comes from one GGUF: the engine reads it, and
the student is made from it (`labdesk.models.gguf_student`), e.g. SmolLM2-135M-Instruct:

    .venv/bin/python bench/device.py --gguf /models/SmolLM2-135M-Instruct.Q4_1.gguf

`--student DIR` trains a Hugging Face folder instead. Without a CUDA GPU it says so, measures
nothing and exits 0; without a CUDA build of llama-cpp-python, the GPU generation row says so.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path, and bench/gguf.py would shadow `gguf`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from labdesk.errors import Cancelled  # noqa: E402
from labdesk.events import Event  # noqa: E402
from labdesk.memory import GIB, plan_training, read_student_config  # noqa: E402
from labdesk.models.engine import Engine, plan_for  # noqa: E402
from labdesk.models.gguf_student import convert  # noqa: E402
from labdesk.models.types import GenRequest  # noqa: E402
from labdesk.recipes import EngineSettings, PhaseSettings, TrainSettings  # noqa: E402
from labdesk.tinymodels import corpus_text  # noqa: E402

NO_CUDA = "no CUDA GPU here (torch sees none): nothing measured; run this on a CUDA machine"


def cuda_problem() -> str | None:
    """Why this machine cannot run the measurements, or None when it can."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return NO_CUDA
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return "bitsandbytes is not installed: pip install bitsandbytes"
    return None


# -- training -------------------------------------------------------------------------------


def chat_samples(n: int) -> list[dict[str, Any]]:
    """Chat samples from the bundled corpus: each line answers the one before it."""
    lines = [line for line in corpus_text().splitlines() if len(line) > 40]
    return [
        {
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": f"What comes after: {lines[i % len(lines)]}"},
                {"role": "assistant", "content": lines[(i + 1) % len(lines)]},
            ]
        }
        for i in range(n)
    ]


def train_row(student: Path, quantize: bool, steps: int, batch_tokens: int) -> dict[str, Any]:
    """`steps` optimizer steps of the real phase trainer; tokens/s after the first step."""
    import torch

    from labdesk.train.torch_backend import train_phase

    settings = TrainSettings(
        backend="torch",
        quantize_4bit=quantize,
        max_seq_len=512,
        gradient_checkpointing=True,
        checkpoint_every=10_000,
    )
    phase = PhaseSettings(
        name="knowledge_1",
        epochs=1.0,
        warmup_steps=0,
        batch_tokens=batch_tokens,
        effective_batch_tokens=batch_tokens,
    )
    began = [0.0]
    progress: list[tuple[float, dict[str, Any]]] = []  # (seconds since the loop began, metrics)

    def on_event(event: Event) -> None:
        if event.kind == "start":
            began[0] = time.perf_counter()
        elif event.kind == "progress" and event.metrics:
            progress.append((time.perf_counter() - began[0], event.metrics))

    cuda = torch.cuda.is_available()  # else a CPU smoke run (tests/test_bench_device.py)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    samples = chat_samples(steps * batch_tokens // 40 + 64)  # enough for `steps` full batches
    # stopped after `steps`, on purpose
    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(Cancelled):
        train_phase(
            student,
            samples,
            phase,
            settings,
            Path(tmp),
            None,
            on_event,
            # asked during each step (true makes it the last): stop in step number `steps`
            stop=lambda: len(progress) >= steps - 1,
        )
    if len(progress) < 2:
        raise SystemExit(f"training ran {len(progress)} steps; raise --steps or add samples")
    (t0, m0), (t1, m1) = progress[0], progress[-1]
    # the loop's tokens_per_s counts from its start: tokens after the first (warm-up) step
    tokens = m1["tokens_per_s"] * t1 - m0["tokens_per_s"] * t0
    plan = plan_training(read_student_config(student), settings, phase, "cuda" if cuda else "cpu")
    return {
        "path": "QLoRA nf4" if quantize else "LoRA bf16",
        "steps": len(progress),
        "tokens_per_s": tokens / (t1 - t0),
        "peak_vram_gib": torch.cuda.max_memory_allocated() / GIB if cuda else 0.0,
        "reserved_gib": torch.cuda.max_memory_reserved() / GIB if cuda else 0.0,
        "planned_gib": plan.total / GIB,
        "loss": f"{m0['loss']:.3f} → {m1['loss']:.3f}",
    }


# -- generation --------------------------------------------------------------------------------


def gpu_used() -> int | None:
    """Memory used on GPU 0 now, from nvidia-smi (bytes); None without it."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    out = subprocess.run(
        [exe, "-i", "0", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    try:
        return int(out.split()[0]) * 2**20
    except (ValueError, IndexError):
        return None


@contextlib.contextmanager
def gpu_peak() -> Iterator[list[int]]:
    """Sample GPU memory while the block runs; yields [peak - before] once it ends."""
    before = gpu_used() or 0
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.1):
            peak[0] = max(peak[0], gpu_used() or 0)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    result: list[int] = []
    try:
        yield result
    finally:
        done.set()
        thread.join()
        result.append(peak[0] - before)


def generate_row(
    gguf: Path, gpu_layers: int, requests: int, max_tokens: int, parallel: int
) -> dict[str, Any]:
    settings = EngineSettings(n_ctx=1024, parallel=parallel, n_gpu_layers=gpu_layers)
    questions = [line for line in corpus_text().splitlines() if line.endswith("?")] or ["Hi?"]
    with gpu_peak() as peak:
        engine = Engine.load(gguf, settings)
        try:
            prompts = [
                engine.chat_prompt([{"role": "user", "content": questions[i % len(questions)]}])
                for i in range(requests)
            ]
            batch = [
                GenRequest(p, max_tokens, temperature=0.7, seed=i) for i, p in enumerate(prompts)
            ]
            engine.generate(batch[:parallel])  # warm up: kernels, first allocations
            began = time.perf_counter()
            results = engine.generate(batch)
            seconds = time.perf_counter() - began
        finally:
            engine.close()
    plan = plan_for(engine.info, settings, gpu_layers)
    return {
        "path": "llama.cpp, every layer on the GPU" if gpu_layers else "llama.cpp, CPU only",
        "requests": requests,
        "tokens_per_s": sum(r.tokens for r in results) / seconds,
        "peak_vram_gib": peak[0] / GIB if gpu_layers else 0.0,
        "planned_vram_gib": plan.vram / GIB,
    }


# -- report ------------------------------------------------------------------------------------


def table(title: str, rows: list[dict[str, Any]]) -> str:
    heads = list(rows[0])
    cells = [[_fmt(row[h]) for h in heads] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, help="the GGUF to generate with (and the student)")
    parser.add_argument("--student", type=Path, help="train this HF folder instead")
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per training row")
    parser.add_argument("--batch-tokens", type=int, default=2048)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--parallel", type=int, default=8)
    args = parser.parse_args(argv)
    problem = cuda_problem()
    if problem is not None:
        print(problem)
        return 0
    if args.gguf is None or not args.gguf.is_file():
        parser.error("--gguf PATH: a GGUF file is needed (e.g. SmolLM2-135M-Instruct.Q4_1.gguf)")
    import llama_cpp
    import torch

    print(f"GPU: {torch.cuda.get_device_name(0)}; model: {args.gguf.name}")
    rows = []
    if llama_cpp.llama_supports_gpu_offload():
        rows.append(generate_row(args.gguf, 999, args.requests, args.max_tokens, args.parallel))
    else:
        print(
            "llama-cpp-python is a CPU build: no GPU generation row (rebuild it with "
            'CMAKE_ARGS="-DGGML_CUDA=on" pip install --force-reinstall --no-cache-dir '
            "llama-cpp-python)"
        )
    rows.append(generate_row(args.gguf, 0, args.requests, args.max_tokens, args.parallel))
    print(
        table(
            f"generate: {args.requests} requests × {args.max_tokens} tokens, "
            f"{args.parallel} sequences at once",
            rows,
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        student = args.student
        if student is None:  # made from the GGUF, as labdesk does for a GGUF student
            student = Path(tmp) / "student"
            convert(args.gguf, student)
        train = [train_row(student, q, args.steps, args.batch_tokens) for q in (True, False)]
    print(
        table(
            f"train: {args.steps} steps of {args.batch_tokens} tokens, LoRA on every "
            "linear layer, gradient checkpointing",
            train,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
