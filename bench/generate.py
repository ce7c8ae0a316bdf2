"""Generation throughput: labdesk's batched pipeline vs the same pipeline one request at a time.

Both runs take the sample taxonomy through the very same steps, prompts, schemas and filters,
with the same GGUF teacher (which also judges). Only the way requests reach llama.cpp differs:

- labdesk: every step's requests for a leaf go to `Engine.generate` together (continuous
  batching over `engine.parallel` sequences, the shared prompt prefix computed once);
- baseline: llama-cpp-python's high-level `Llama.create_completion`, one call per request,
  as upstream's generator talks to llama-cpp-python (same grammar, same sampling settings).

We report accepted samples per minute and teacher tokens (generated, teacher + judge) per
accepted sample. Acceptance differs a little between the two (different sampler code paths
draw different tokens), which is why samples per minute is the headline, not wall time alone.

    .venv/bin/python bench/generate.py [--gguf PATH] [--samples 4] [--parallel 8] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Run as a script, bench/ comes first on sys.path, and bench/gguf.py would shadow `gguf`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from labdesk.generate import GenerationReport, Models, generate_leaves  # noqa: E402
from labdesk.models.engine import Engine  # noqa: E402
from labdesk.models.grammar import schema_to_gbnf  # noqa: E402
from labdesk.models.types import GenRequest, GenResult  # noqa: E402
from labdesk.recipes import load_recipe  # noqa: E402
from labdesk.resources import data_dir  # noqa: E402
from labdesk.taxonomy import load_taxonomy  # noqa: E402
from labdesk.workspace import Workspace  # noqa: E402


class OneAtATime:
    """The baseline: `Llama.create_completion`, one request after the other.

    Prompts are formatted and counted with the labdesk engine's template and tokenizer so both
    runs send byte-identical prompts; only decoding goes through the high-level API.
    """

    def __init__(self, path: Path, engine: Engine, threads: int) -> None:
        from llama_cpp import Llama

        self.engine = engine
        self.n_ctx = engine.n_ctx
        self.llm = Llama(
            model_path=str(path),
            n_ctx=engine.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )

    def generate(
        self,
        requests: Sequence[GenRequest],
        *,
        on_result: Callable[[int, GenResult], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenResult]:
        from llama_cpp import LlamaGrammar

        results = []
        for index, request in enumerate(requests):
            grammar = (
                LlamaGrammar.from_string(schema_to_gbnf(request.schema), verbose=False)
                if request.schema is not None
                else None
            )
            out: Any = self.llm.create_completion(
                request.prompt,
                max_tokens=request.max_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                top_k=0,
                min_p=0.0,
                repeat_penalty=1.0,
                seed=request.seed,
                grammar=grammar,
            )
            choice = out["choices"][0]
            reason = "stop" if choice["finish_reason"] == "stop" else "length"
            value = json.loads(choice["text"]) if request.schema and reason == "stop" else None
            usage = out["usage"]
            result = GenResult(
                choice["text"], usage["completion_tokens"], usage["prompt_tokens"], reason, value
            )
            results.append(result)
            if on_result is not None:
                on_result(index, result)
        return results

    def chat_prompt(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return self.engine.chat_prompt(messages, add_generation_prompt)

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)


def run(
    models: Models, recipe: Any, ws: Workspace, folder: Path
) -> tuple[GenerationReport, float, float]:
    """The report, wall seconds and CPU seconds (all threads of this process) of one run."""
    leaves = load_taxonomy(data_dir("taxonomy")).leaves
    start, cpu = time.perf_counter(), time.process_time()
    report = generate_leaves(leaves, recipe, folder, models, ws=ws)
    return report, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", type=Path, help="teacher GGUF (default: the demo's tiny-teacher)")
    parser.add_argument("--samples", type=int, default=4, help="samples_per_leaf")
    parser.add_argument("--parallel", type=int, default=8, help="engine.parallel for labdesk")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--max-tokens", type=int, default=64, help="generate.max_new_tokens")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="labdesk-bench-generate-") as tmp:
        home = Path(tmp)
        ws = Workspace.open(home)
        teacher = f"{{path: {args.gguf}}}" if args.gguf else "{builtin: tiny-teacher}"
        overrides = [
            f"teacher={teacher}",
            f"engine.parallel={args.parallel}",
            "engine.n_ctx=1280",
            f"generate.samples_per_leaf={args.samples}",
            f"generate.max_new_tokens={args.max_tokens}",
            "generate.judge_max_tokens=48",
            "generate.examples_per_prompt=1",
            "generate.chunk_tokens=300",
            "generate.augmentations=[summary]",
            "generate.max_rounds=2",
        ]
        if args.threads:
            overrides.append(f"engine.n_threads={args.threads}")
        if args.gguf and "stories260K" in args.gguf.name:
            overrides.append(
                "engine.chat_template=\"{% for m in messages %}{{ m['role'] }}: "
                "{{ m['content'] }}\\n{% endfor %}assistant: \""
            )
        recipe = load_recipe("demo", overrides)
        from labdesk.generate import load_models

        batched = load_models(recipe, ws)
        engine = batched.teacher
        assert isinstance(engine, Engine)
        path = engine.path
        threads = args.threads or recipe.engine.n_threads or engine.settings.n_threads or 2
        baseline = OneAtATime(path, engine, threads)
        single = Models(baseline, baseline, batched.teacher_name, batched.judge_name)

        rows = []
        for label, models in (("labdesk batched", batched), ("one at a time (Llama)", single)):
            report, seconds, cpu = run(models, recipe, ws, home / "runs" / label.split()[0])
            tokens = report.teacher_tokens
            rows.append((label, report.accepted, report.rejected, seconds, cpu, tokens))

    print(f"teacher: {path.name}, samples_per_leaf={args.samples}, parallel={args.parallel}")
    # On a shared machine wall time swings with other processes; CPU seconds of this process
    # (llama.cpp's threads included) measure the work itself.
    header = (
        f"{'pipeline':<24}{'accepted':>9}{'rejected':>9}{'wall s':>8}{'cpu s':>8}"
        f"{'acc/min':>9}{'acc/cpu-min':>12}{'tok/acc':>9}"
    )
    print(header)
    print("-" * len(header))
    for label, accepted, rejected, seconds, cpu, tokens in rows:
        print(
            f"{label:<24}{accepted:>9}{rejected:>9}{seconds:>8.1f}{cpu:>8.1f}"
            f"{accepted / seconds * 60:>9.1f}{accepted / cpu * 60:>12.1f}"
            f"{tokens / max(1, accepted):>9.0f}"
        )
    wall = (rows[0][1] / rows[0][3]) / max(1e-9, rows[1][1] / rows[1][3])
    per_cpu = (rows[0][1] / rows[0][4]) / max(1e-9, rows[1][1] / rows[1][4])
    print(f"\nbatched vs one at a time: {wall:.2f}x accepted/min, {per_cpu:.2f}x per CPU-minute")


if __name__ == "__main__":
    main()
