"""GGUF conversion: time and peak memory, ours (streaming) vs loading the model in transformers.

Each measurement runs in a fresh child process and reports that child's peak RSS. Peak RSS is
shown as a multiple of the output size: a streaming converter stays near the size of the
imports plus one tensor, while anything that holds the model needs at least one full copy.

    .venv/bin/python bench/gguf.py [--fixture PATH] [--skip-100m]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO.parent / "shared" / "fixtures" / "stories260K" / "hf"

# Child programs; each prints {"rss": peak bytes, "s": seconds of the measured work}.
_PRELUDE = """
import json, resource, sys, time
from pathlib import Path
import numpy, gguf, llama_cpp  # imported before timing: every variant pays them
"""
_EPILOGUE = """
print(json.dumps({"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "s": time.perf_counter() - t0}))
"""
PROGRAMS = {
    "imports only": "t0 = time.perf_counter()",
    "labdesk convert": (
        "from labdesk.export.gguf import convert_model\n"
        "t0 = time.perf_counter()\n"
        "convert_model(Path(sys.argv[1]), Path(sys.argv[2]), outtype=sys.argv[3], check=False)"
    ),
    "labdesk quantize": (
        "from labdesk.export.quantize import quantize\n"
        "t0 = time.perf_counter()\n"
        "quantize(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])"
    ),
    "transformers load": (
        "import torch\nfrom transformers import AutoModelForCausalLM\n"
        "t0 = time.perf_counter()\n"
        "m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float16)"
    ),
}


def measure(program: str, *args: str) -> dict[str, float]:
    code = _PRELUDE + PROGRAMS[program] + _EPILOGUE
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, cwd=REPO
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def bench_model(label: str, hf_dir: Path, work: Path) -> list[tuple[str, ...]]:
    rows = []
    base = measure("imports only")["rss"]
    f16 = work / f"{label}-f16.gguf"
    conv = measure("labdesk convert", str(hf_dir), str(f16), "f16")
    q4 = work / f"{label}-q4_k_m.gguf"
    quant = measure("labdesk quantize", str(f16), str(q4), "q4_k_m")
    naive = measure("transformers load", str(hf_dir))
    for what, result, out in (
        ("labdesk → F16", conv, f16),
        ("labdesk F16 → Q4_K_M (+check)", quant, q4),
        ("transformers load, F16 (baseline)", naive, f16),
    ):
        size = out.stat().st_size
        rows.append(
            (
                label,
                what,
                f"{result['s']:.2f}",
                f"{size / 2**20:.1f}",
                f"{result['rss'] / 2**20:.0f}",
                f"{(result['rss'] - base) / 2**20:.0f}",
                f"{result['rss'] / size:.2f}x",
                f"{(result['rss'] - base) / size:.2f}x",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    parser.add_argument("--skip-100m", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.fixture.is_dir():
            rows += bench_model("stories260K", args.fixture, work)
        if not args.skip_100m:
            started = time.perf_counter()
            # ~100M parameters: 14 layers of width 768, vocab 2,048, tied embeddings. Built in
            # a child: Linux children inherit the parent's peak RSS, so the parent stays small.
            hf_dir = work / "llama100m" / "hf"
            build = (
                "import sys; from pathlib import Path; from labdesk.tinymodels import build_tiny_model; "
                "build_tiny_model(sys.argv[1], hidden=768, layers=14, heads=12, kv_heads=12, "
                "intermediate=2048, vocab=2048, context=2048, outtype='f16', gguf_path=Path(sys.argv[2]))"
            )
            subprocess.run(
                [sys.executable, "-c", build, str(hf_dir), str(work / "built.gguf")],
                check=True, cwd=REPO, capture_output=True,
            )  # fmt: skip
            print(f"built the 100M model in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            rows += bench_model("llama-100M", hf_dir, work)
    header = ("model", "what", "time s", "output MiB", "peak RSS MiB", "RSS - imports MiB",
              "RSS / output", "(RSS - imports) / output")  # fmt: skip
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
