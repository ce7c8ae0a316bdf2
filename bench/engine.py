"""Teacher runtime throughput: labdesk's engine against llama-cpp-python one request at a time
and llama.cpp's own C++ server with the same number of slots, on the same GGUF and requests.

Prints, in one run:
  1. aggregate generated tokens/s for the same requests (chat prompts, greedy): llama-cpp-python's
     high-level `Llama` one by one (how upstream's tools drive llama.cpp); labdesk's engine at
     1, 2, 4, 8 and 16 slots; with `--llama-cpp-bin DIR`, `llama-server` with as many slots
     (continuous batching, its own prompt cache) and `llama-batched-bench`'s pure decoding rate
     (no prompts, no sampling: the ceiling);
  2. a leaf-like workload — one long shared prompt prefix, many short continuations — with
     prefix reuse on and off;
  3. labdesk's own per-step overhead (batching, sampling, grammar checks, Python: everything
     but llama.cpp's decode) per slot, for a 32K and a 152K vocabulary, greedy and top-p;
     it should not grow with the number of slots;
and last, with `--llama-cpp-bin`: `labdesk / llama.cpp C++ at 8 slots: R×`.

Default model: SmolLM2-135M-Instruct Q4_1, the demo recipe's teacher (a real 49K-vocabulary
instruct model, pulled into the workspace as `labdesk models pull demo` does); where it cannot be
pulled, the real stories260K GGUF and a random ~19M-parameter Llama. How to build
llama.cpp's tools: see bench/cpp_llama.py.

Times are CPU seconds (this process for labdesk and llama-cpp-python, the server process for
llama-server), not wall time: the bench machine is shared, another process holding a core
stretches wall time at random, and with one thread CPU time is what wall time would be on an
idle machine. `--wall` times by the clock instead. Each row is the best of `--repeats` runs,
the rows of one slot count run back to back so they see the same load.

Run: .venv/bin/python bench/engine.py [--llama-cpp-bin DIR] [--gguf PATH ...] [--threads N]
     [--quick] [--wall]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from labdesk.models.engine import Engine
from labdesk.models.synthetic import write_random_llama
from labdesk.models.types import GenRequest
from labdesk.recipes import EngineSettings

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[0].parent / "shared/fixtures"
STORIES = SHARED / "stories260K/stories260K.gguf"
VOCAB_32K = SHARED / "vocab/ggml-vocab-llama-spm.gguf"
QWEN2_VOCAB = 151_936
SLOTS = (1, 2, 4, 8, 16)
CLOCK: Callable[[], float] = time.process_time
TOPICS = [
    "rivers",
    "lighthouses",
    "bread",
    "glaciers",
    "owls",
    "copper",
    "tides",
    "maps",
    "bees",
    "volcanoes",
    "kites",
    "salt",
    "ferns",
    "clocks",
    "harbours",
    "moss",
]


def _cpp() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cpp_llama", HERE / "cpp_llama.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prompt(engine: Engine, i: int, words: int = 12) -> str:
    ask = f"Tell me {words} things about {TOPICS[i % len(TOPICS)]}, number {i}."
    if engine.info.chat_template:
        return engine.chat_prompt([{"role": "user", "content": ask}])
    return ask


def _best(fn: Callable[[], tuple[float, int]], repeats: int) -> tuple[float, int]:
    """Fastest of `repeats` runs of `fn` (which returns its seconds and tokens)."""
    return min(fn() for _ in range(repeats))


def throughput(path: Path, args: argparse.Namespace, cpp: ModuleType | None) -> float | None:
    """Table 1; returns labdesk / llama-server at 8 slots when the server ran."""
    n_ctx = 512
    probe = Engine.load(path, EngineSettings(n_ctx=n_ctx, parallel=1, n_threads=args.threads))
    requests = [GenRequest(_prompt(probe, i), args.max_tokens) for i in range(args.requests)]
    probe.close()
    warm = [GenRequest("Warm up.", 4)]
    server_bin = cpp.tool(args.llama_cpp_bin, "llama-server") if cpp else None
    bench_bin = cpp.tool(args.llama_cpp_bin, "llama-batched-bench") if cpp else None
    print(
        f"\n  {len(requests)} chat requests × up to {args.max_tokens} tokens, greedy, "
        f"{args.threads} thread(s); generated tokens/s"
    )

    import llama_cpp

    llm = llama_cpp.Llama(
        str(path), n_ctx=n_ctx, n_threads=args.threads, n_threads_batch=args.threads, verbose=False
    )

    def upstream() -> tuple[float, int]:
        start, total = CLOCK(), 0
        for r in requests:
            out = llm.create_completion(r.prompt, max_tokens=r.max_tokens, temperature=0.0)
            total += int(out["usage"]["completion_tokens"])  # type: ignore[index]
        return CLOCK() - start, total

    seconds, tokens = _best(upstream, args.repeats)
    llm.close()
    print(f"  llama_cpp.Llama, one at a time: {tokens / seconds:.1f} tokens/s")
    decode_rates = {}
    if cpp is not None and bench_bin is not None:
        decode_rates = cpp.batched_bench(
            bench_bin, path, slots=SLOTS, prompt=32, generated=args.max_tokens, threads=args.threads
        )
    header = f"  {'slots':>5}{'labdesk':>10}{'llama-server':>14}{'labdesk/server':>16}"
    header += f"{'batched-bench decode (wall)':>29}" if decode_rates else ""
    print(header)
    ratio_at_8 = None
    for slots in SLOTS:
        settings = EngineSettings(n_ctx=n_ctx, parallel=slots, n_threads=args.threads)
        engine = Engine.load(path, settings)

        def ours(e: Engine = engine) -> tuple[float, int]:
            e.generate(warm)
            e.forget()  # cold, as a fresh llama-server
            start = CLOCK()
            tokens = sum(r.tokens for r in e.generate(requests))
            return CLOCK() - start, tokens

        def theirs(slots: int = slots) -> tuple[float, int]:
            assert cpp is not None
            server = cpp.CppServer(server_bin, path, slots=slots, n_ctx=n_ctx, threads=args.threads)
            try:
                server.run(warm)
                clock = time.perf_counter if CLOCK is time.perf_counter else server.cpu_seconds
                start = clock()
                tokens = sum(int(r["tokens_predicted"]) for r in server.run(requests))
                return clock() - start, tokens
            finally:
                server.close()

        ours_runs, theirs_runs = [], []
        for _ in range(args.repeats):  # alternate, so both see the same load
            ours_runs.append(ours())
            if server_bin is not None:
                theirs_runs.append(theirs())
        engine.close()
        rate = _rate(min(ours_runs))
        row = f"  {slots:>5}{rate:>10.1f}"
        if theirs_runs:
            other = _rate(min(theirs_runs))
            row += f"{other:>14.1f}{rate / other:>15.2f}×"
            if slots == 8:
                ratio_at_8 = rate / other
        else:
            row += f"{'-':>14}{'-':>16}"
        if decode_rates:
            row += f"{decode_rates.get(slots, float('nan')):>29.1f}"
        print(row)
    return ratio_at_8


def _rate(run: tuple[float, int]) -> float:
    seconds, tokens = run
    return tokens / seconds


def prefix_reuse(path: Path, threads: int, n_requests: int, repeats: int) -> None:
    probe = Engine.load(path, EngineSettings(n_ctx=1024, parallel=1, n_threads=threads))
    shared = _prompt(probe, 0) + " ".join(TOPICS) * 12
    probe.close()
    requests = [
        GenRequest(f"{shared}\nQuestion {i}: {TOPICS[i % 16]} {i}", max_tokens=16)
        for i in range(n_requests)
    ]
    prompt_only = [GenRequest(r.prompt, max_tokens=1) for r in requests]
    # The engine keeps what earlier calls computed; "cold" rows drop it first, so they compute
    # the shared prefix once per call, as a leaf's first step does.
    print(f"\n  leaf-like workload: {n_requests} requests sharing a prefix, 8 parallel")
    print(f"  {'':<34}{'reuse off':>11}{'reuse on':>11}{'speed-up':>10}")
    rows: dict[str, list[float]] = {}
    for reuse in (False, True):
        settings = EngineSettings(n_ctx=1024, parallel=8, n_threads=threads, reuse_prefix=reuse)
        engine = Engine.load(path, settings)
        cases = (
            ("prompt handling", prompt_only, True),
            ("end to end (16 tokens each)", requests, True),
            ("prompt handling, prefix kept", prompt_only, False),
        )
        for label, batch, cold in cases:

            def run(e: Engine = engine, b: list[GenRequest] = batch, c: bool = cold) -> float:
                if c:
                    e.forget()
                start = CLOCK()
                e.generate(b)
                return CLOCK() - start

            rows.setdefault(label, []).append(min(run() for _ in range(repeats)))
        if reuse:
            mean_prompt = statistics.mean(engine.count_tokens(r.prompt) for r in requests)
            shared_tokens = len(engine.kv_tokens[engine.parallel])  # the spare sequence
        engine.close()
    for label, (off, on) in rows.items():
        print(f"  {label:<34}{off:>10.3f}s{on:>10.3f}s{off / on:>9.1f}×")
    print(f"  (prompts of {mean_prompt:.0f} tokens; {shared_tokens} shared)")
    print("  ('prefix kept': the previous call left the shared prefix in the cache, as a leaf's")
    print("   next step or a chat's next turn finds it)")


def overhead(folder: Path, threads: int, repeats: int) -> None:
    """Table 3: CPU time of a generate call outside llama_decode, per generated token (that
    is, per slot per step), on small random models so decoding is quick and the overhead
    shows."""
    if not VOCAB_32K.is_file():
        print(f"\n  (per-step overhead needs the 32K vocabulary fixture at {VOCAB_32K})")
        return
    print("\n  labdesk's own time per slot per step (µs of CPU, outside llama.cpp's decode)")
    print(f"  {'vocabulary':<22}{'sampling':<10}" + "".join(f"{s:>8}" for s in SLOTS))
    for label, n_vocab in (("32,000 (Llama 2)", None), (f"{QWEN2_VOCAB:,} (Qwen2)", QWEN2_VOCAB)):
        path = write_random_llama(
            folder / f"overhead-{n_vocab}.gguf", tokenizer_from=VOCAB_32K, n_vocab=n_vocab
        )
        for sampling, temperature in (("greedy", 0.0), ("top-p", 0.7)):
            row = f"  {label:<22}{sampling:<10}"
            for slots in SLOTS:
                settings = EngineSettings(n_ctx=256, parallel=slots, n_threads=threads)
                engine = Engine.load(path, settings)
                requests = [
                    GenRequest(f"Item {i}: {TOPICS[i % 16]}", 48, temperature, 0.95, seed=i)
                    for i in range(slots)
                ]
                engine.generate(requests[:1])  # warm
                best = float("inf")
                for _ in range(repeats):
                    stats = engine.stats
                    cpu, decode = time.thread_time(), stats.decode_cpu_seconds
                    tokens = sum(r.tokens for r in engine.generate(requests))
                    spent = time.thread_time() - cpu - (stats.decode_cpu_seconds - decode)
                    best = min(best, spent / max(tokens, 1))
                engine.close()
                row += f"{best * 1e6:>8.0f}"
            print(row)


def _demo_teacher() -> Path | None:
    """The demo recipe's teacher GGUF, pulled if it is not yet; None where it cannot be."""
    from labdesk.errors import ModelError
    from labdesk.models.store import pull_model
    from labdesk.recipes import load_recipe
    from labdesk.workspace import Workspace

    try:
        return pull_model(load_recipe("demo").teacher, Workspace.open(), want="gguf")
    except ModelError as exc:
        print(
            f"SmolLM2 could not be pulled ({exc.message}): a random model instead", file=sys.stderr
        )
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="one run per row, fewer requests")
    parser.add_argument("--repeats", type=int, default=None, help="runs per row (default 2)")
    parser.add_argument("--wall", action="store_true", help="time by the clock, not CPU time")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=None, help="default 32 (16 quick)")
    parser.add_argument("--llama-cpp-bin", type=Path, help="folder with llama.cpp's built tools")
    parser.add_argument(
        "--gguf", type=Path, action="append", help="measure this GGUF instead (repeatable)"
    )
    args = parser.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.requests = args.requests or (16 if args.quick else 32)
    cpp = _cpp() if args.llama_cpp_bin else None
    if cpp is not None and not cpp.tool(args.llama_cpp_bin, "llama-server"):
        print(f"no llama-server in {args.llama_cpp_bin}: its rows are left out", file=sys.stderr)
    print(
        f"timing by {'wall clock' if args.wall else 'CPU time'}, {args.threads} thread(s), "
        f"best of {args.repeats}"
    )
    ratio = None
    with tempfile.TemporaryDirectory() as tmp:
        if args.gguf:
            models = [(path.name, path) for path in args.gguf]
        elif smollm2 := _demo_teacher():
            models = [("SmolLM2-135M-Instruct Q4_1 (real, 49K vocabulary)", smollm2)]
        else:
            big = write_random_llama(
                Path(tmp) / "random-20M.gguf",
                tokenizer_from=STORIES,
                n_embd=512,
                n_layer=6,
                n_head=8,
                n_head_kv=8,
                n_ff=1536,
            )
            models = [
                ("stories260K (real, 0.26M params)", STORIES),
                ("random Llama (~19M params, F32)", big),
            ]
        for title, path in models:
            print(f"\n== {title} ==")
            ratio = throughput(path, args, cpp)
            prefix_reuse(path, args.threads, n_requests=16, repeats=args.repeats)
        overhead(Path(tmp), args.threads, args.repeats)
    if ratio is not None:
        print(f"\nlabdesk / llama.cpp C++ at 8 slots: {ratio:.2f}×")


if __name__ == "__main__":
    main()
