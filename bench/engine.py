"""Teacher runtime throughput: batched decoding and shared-prefix reuse, vs one at a time.

Prints, for each model, in one run:
  1. aggregate tokens/s decoding 1, 2, 4, 8 and 16 sequences together (our engine), next to
     llama-cpp-python's high-level `Llama` answering the same requests one by one (how
     upstream's tools drive llama.cpp);
  2. a leaf-like workload — one long shared prompt prefix, many short continuations — with
     prefix reuse on and off: prompt-handling time (1 generated token) and end to end.

Models: the real stories260K GGUF (so small that per-call overhead dominates) and a random-weight
Llama of ~20M parameters built on the fly (so compute dominates, like a real teacher).

Run: .venv/bin/python bench/engine.py [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from labdesk.models.engine import Engine
from labdesk.models.synthetic import write_random_llama
from labdesk.models.types import GenRequest
from labdesk.recipes import EngineSettings

STORIES = (
    Path(__file__).resolve().parents[1].parent / "shared/fixtures/stories260K/stories260K.gguf"
)
CLOCK = time.process_time
WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "red",
    "mat",
    "and",
    "saw",
    "big",
    "dog",
    "run",
    "to",
    "park",
    "with",
    "Lily",
    "who",
    "had",
    "ball",
]


def _prompt(i: int, words: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(words))


def _best(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    """Fastest of `repeats` runs in CPU seconds of this process, and its token count.

    CPU time, not wall time: the bench machine is shared, and another process holding a core
    stretches wall time at random; with one llama.cpp thread, CPU time is what wall time would
    be on an idle machine. (Run with --wall to time by the clock instead.)
    """
    runs = []
    for _ in range(repeats):
        start = CLOCK()
        tokens = fn()
        runs.append((CLOCK() - start, tokens))
    return min(runs)


def throughput(path: Path, threads: int, n_requests: int, max_tokens: int, repeats: int) -> None:
    requests = [GenRequest(_prompt(i, 6), max_tokens) for i in range(n_requests)]
    print(f"\n  decoding {n_requests} requests × {max_tokens} tokens ({threads} thread(s))")
    print(f"  {'setup':<34}{'tokens/s':>10}{'speed-up':>10}")

    import llama_cpp

    llm = llama_cpp.Llama(
        str(path), n_ctx=512, n_threads=threads, n_threads_batch=threads, verbose=False
    )

    def upstream() -> int:
        total = 0
        for r in requests:
            out = llm.create_completion(r.prompt, max_tokens=r.max_tokens, temperature=0.0)
            total += int(out["usage"]["completion_tokens"])  # type: ignore[index]
        return total

    seconds, tokens = _best(upstream, repeats)
    print(f"  {'llama_cpp.Llama, one at a time':<34}{tokens / seconds:>10.0f}{'':>10}")
    llm.close()
    base = None
    for parallel in (1, 2, 4, 8, 16):
        settings = EngineSettings(n_ctx=512, parallel=parallel, n_threads=threads)
        engine = Engine.load(path, settings)
        seconds, tokens = _best(
            lambda e=engine: sum(r.tokens for r in e.generate(requests)), repeats
        )
        rate = tokens / seconds
        base = base or rate
        print(f"  {f'labdesk engine, {parallel} parallel':<34}{rate:>10.0f}{rate / base:>9.1f}×")
        engine.close()


def prefix_reuse(path: Path, threads: int, n_requests: int, repeats: int) -> None:
    shared = "You write questions about this story. " + _prompt(0, 300)
    requests = [
        GenRequest(f"{shared}\nQuestion {i}: {_prompt(i, 8)}", max_tokens=16)
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

            def run(e: Engine = engine, b: list[GenRequest] = batch, c: bool = cold) -> int:
                if c:
                    e.forget()
                return len(e.generate(b))

            rows.setdefault(label, []).append(_best(run, repeats)[0])
        if reuse:
            mean_prompt = statistics.mean(engine.count_tokens(r.prompt) for r in requests)
            shared_tokens = len(engine.kv_tokens[engine.parallel])  # the spare sequence
        engine.close()
    for label, (off, on) in rows.items():
        print(f"  {label:<34}{off:>10.3f}s{on:>10.3f}s{off / on:>9.1f}×")
    print(f"  (prompts of {mean_prompt:.0f} tokens; {shared_tokens} shared)")
    print("  ('prefix kept': the previous call left the shared prefix in the cache, as a leaf's")
    print("   next step or a chat's next turn finds it)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--wall", action="store_true", help="time by the clock, not CPU time")
    parser.add_argument(
        "--gguf", type=Path, action="append", help="measure this GGUF instead (repeatable)"
    )
    args = parser.parse_args()
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    print(
        f"timing by {'wall clock' if args.wall else 'process CPU time'}, {args.threads} thread(s)"
    )
    repeats = 1 if args.quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        if args.gguf:
            models = [(path.name, path, 32) for path in args.gguf]
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
                ("stories260K (real, 0.26M params)", STORIES, 64),
                ("random Llama (~19M params, F32)", big, 32),
            ]
        for title, path, tokens in models:
            print(f"\n== {title} ==")
            throughput(path, args.threads, n_requests=16, max_tokens=tokens, repeats=repeats)
            prefix_reuse(path, args.threads, n_requests=16, repeats=repeats)


if __name__ == "__main__":
    main()
