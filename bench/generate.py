"""Generation throughput: labdesk's batched pipeline vs the same pipeline one request at a time.

Both runs take the sample taxonomy through the very same steps, prompts, schemas and filters,
with the same GGUF teacher (which also judges). Only the way requests reach llama.cpp differs:

- labdesk: every step's requests for a leaf go to `Engine.generate` together (continuous
  batching over `engine.parallel` sequences; a request starts from the longest prompt prefix
  any sequence holds; the first token is sampled in numpy and checked against the grammar);
- baseline: llama-cpp-python's high-level `Llama.create_completion`, one call per request,
  as upstream's generator talks to llama-cpp-python (same grammar, same sampling settings;
  `Llama` itself reuses the prompt prefix it shares with the previous request).

Teachers (default: tiny and llama32k): `tiny`, the tiny recipe's 3.4M-parameter model with a 1.8K
vocabulary; `llama32k`, random F32 weights (19M parameters, most of them the embeddings) with
the real 32,000-token Llama-2 vocabulary from ../shared/fixtures, the size of the CPU recipe's
merlinite teacher's; `llama32k-q4`, the same vocabulary on a 160M model quantized to Q4_K_M
like merlinite (compute-bound here, as a real teacher is; ~5 minutes). Or any GGUF path.

We report accepted samples per minute and teacher tokens (generated, teacher + judge) per
accepted sample. Acceptance differs a little between the two (different sampler code paths
draw different tokens), which is why samples per minute is the headline, not wall time alone.
Below each table: where the baseline's time went, by llama.cpp's own clock, and the bound its
prompt time alone puts on any speed-up (batching makes generated tokens cheaper, prompt tokens
barely: both runs compute about the same ones).

    .venv/bin/python bench/generate.py [--teacher tiny|llama32k|llama32k-q4|PATH ...]
        [--samples 4] [--parallel 8] [--max-tokens 256] [--judge-tokens 96] [--threads N]
        [--set key=value ...]
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

from labdesk.export.quantize import quantize  # noqa: E402
from labdesk.generate import GenerationReport, Models, generate_leaves  # noqa: E402
from labdesk.models.engine import Engine  # noqa: E402
from labdesk.models.grammar import schema_to_gbnf  # noqa: E402
from labdesk.models.synthetic import write_random_llama  # noqa: E402
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


VOCAB_32K = (
    Path(__file__).resolve().parents[1].parent / "shared/fixtures/vocab/ggml-vocab-llama-spm.gguf"
)
# A plain template for models whose vocabulary has no LAB chat markers as control tokens.
PLAIN_TEMPLATE = (
    "engine.chat_template=\"{% for m in messages %}{{ m['role'] }}: "
    "{{ m['content'] }}\\n{% endfor %}assistant: \""
)


def teacher_file(name: str, folder: Path) -> tuple[str, list[str]]:
    """(recipe teacher value, extra overrides) for a teacher named on the command line."""
    if name == "tiny":
        return "{builtin: tiny-teacher}", []
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
        f"generate.judge_max_tokens={args.judge_tokens}",
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
    single = Models(baseline, baseline, batched.teacher_name, batched.judge_name)

    rows = []
    for label, models in (("labdesk batched", batched), ("one at a time (Llama)", single)):
        report, seconds, cpu = run(models, recipe, ws, home / "runs" / f"{name}-{label.split()[0]}")
        rows.append((label, report.accepted, report.rejected, seconds, cpu, report.teacher_tokens))
    computed, reused = engine.stats.prompt_computed, engine.stats.prompt_reused
    engine.close()

    print(
        f"\nteacher: {engine.path.name} ({engine.n_vocab:,}-token vocabulary), "
        f"samples_per_leaf={args.samples}, parallel={args.parallel}, "
        f"max_new_tokens={args.max_tokens}, judge_max_tokens={args.judge_tokens}"
    )
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
    if rows[1][1]:
        wall = (rows[0][1] / rows[0][3]) / (rows[1][1] / rows[1][3])
        per_cpu = (rows[0][1] / rows[0][4]) / (rows[1][1] / rows[1][4])
        print(f"batched vs one at a time: {wall:.2f}x accepted/min, {per_cpu:.2f}x per CPU-minute")
    else:
        print("batched vs one at a time: no ratio, the baseline accepted nothing (raise --samples)")
    # Batching shares decode steps between sequences; it cannot make a prompt token cheaper to
    # compute. Both runs compute about the same prompt tokens (the baseline's Llama reuses the
    # prefix it shares with the previous request), so the baseline's prompt time bounds any
    # speed-up: even free generation, sampling and Python leave it.
    n_prompt, t_prompt, n_gen, t_gen = baseline.llama_time()
    base_wall = rows[1][3]
    print(
        f"baseline time: prompts {t_prompt:.1f}s ({n_prompt:,} tokens), generation {t_gen:.1f}s "
        f"({n_gen:,} tokens), sampling/grammar/Python {base_wall - t_prompt - t_gen:.1f}s; "
        f"labdesk computed {computed:,} prompt tokens (and found {reused:,} in the cache)"
    )
    bound = base_wall / max(t_prompt, 1e-9)
    print(f"bound from prompts alone (generation, sampling and Python free): {bound:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--teacher",
        action="append",
        help="tiny (the tiny recipe's), llama32k or llama32k-q4 (random weights, real 32K Llama "
        "vocabulary) or a GGUF path; repeat for several (default: tiny and llama32k)",
    )
    parser.add_argument("--samples", type=int, default=4, help="samples_per_leaf")
    parser.add_argument("--parallel", type=int, default=8, help="engine.parallel for labdesk")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--max-tokens", type=int, default=256, help="generate.max_new_tokens")
    parser.add_argument("--judge-tokens", type=int, default=96, help="generate.judge_max_tokens")
    parser.add_argument("--set", action="append", default=[], help="more recipe overrides")
    args = parser.parse_args()
    for name in args.teacher or ["tiny", "llama32k"]:
        with tempfile.TemporaryDirectory(prefix="labdesk-bench-generate-") as tmp:
            measure(name, args, Path(tmp))


if __name__ == "__main__":
    main()
