"""Chat latency: labdesk's chat path vs raw llama-cpp-python, same GGUF, prompt and threads.

labdesk: `Chatter.reply` (history fitting, template, stop handling) over `Engine.stream`.
Baseline: `Llama.create_completion(prompt, stream=True)`.
Both decode greedily, so they produce the same text; we report time to first token (TTFT),
decode speed after the first token, and labdesk's overhead against the baseline, once with
the prompt computed from scratch every time (cold) and once with both reusing the KV cache of
the same prompt from the call before (warm, as in a chat's later turns).

    .venv/bin/python bench/chat.py [--gguf PATH] [--tokens 200] [--repeats 15] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llama_cpp import Llama


from labdesk.chat import LAB_CHAT_TEMPLATE, ChatSession, Chatter
from labdesk.models.engine import Engine
from labdesk.recipes import EngineSettings

DEFAULT_GGUF = Path(__file__).resolve().parents[2] / "shared/fixtures/stories260K/stories260K.gguf"
SYSTEM = "I am a helpful assistant, trained with the LAB method."
QUESTION = "Once upon a time, there was a little girl named Lily. Tell me what happened next."


def timed(stream: Iterator[str]) -> tuple[float, float, str]:
    """(seconds to the first piece, seconds for the rest, text) of a stream."""
    start = time.perf_counter()
    first = None
    pieces = []
    for piece in stream:
        if first is None and piece:
            first = time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    first = first or end
    return first - start, end - first, "".join(pieces)


def labdesk_once(chatter: Chatter) -> tuple[float, float, str]:
    """One answer to a fresh session through labdesk's chat path."""
    return timed(chatter.reply(ChatSession(model="bench", system_prompt=SYSTEM), QUESTION))


def raw_once(raw: Llama, prompt: str, tokens: int, reset: bool) -> tuple[float, float, str]:
    """The same prompt through llama-cpp-python's own streaming completion."""
    if reset:
        raw.reset()
    chunks = raw.create_completion(prompt, max_tokens=tokens, temperature=0.0, top_k=1, stream=True)
    return timed(chunk["choices"][0]["text"] for chunk in chunks)  # type: ignore[index]


def _tokens(engine: Engine, text: str) -> int:
    return len(engine.tokenize(text)) - (1 if engine.tokenize("") else 0)  # minus BOS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--gguf", type=Path, default=DEFAULT_GGUF)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ctx", type=int, default=512)
    parser.add_argument("--gpu-layers", type=int, default=0)
    args = parser.parse_args()

    from llama_cpp import Llama

    raw = Llama(
        model_path=str(args.gguf),
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        n_gpu_layers=args.gpu_layers,
        n_batch=512,
        verbose=False,
    )
    print(
        f"model: {args.gguf.name}  threads: {args.threads}  answer: {args.tokens} tokens  "
        f"best of {args.repeats} interleaved runs (background load only ever adds time)"
    )
    print(
        f"{'prompt cache':<13} {'path':<18} {'TTFT ms':>9} {'decode tok/s':>13} {'same text':>10}"
    )
    # cold: the prompt is computed every time (labdesk without its prefix cache, llama-cpp-python
    # reset); warm: both reuse the KV of the identical prompt from the previous call. All four
    # paths run interleaved, so a burst of background load hits every one of them alike.
    chatters = {}
    for cache in ("cold", "warm"):
        settings = EngineSettings(
            n_ctx=args.n_ctx,
            parallel=1,
            n_threads=args.threads,
            n_gpu_layers=args.gpu_layers,
            chat_template=LAB_CHAT_TEMPLATE,
            reuse_prefix=cache == "warm",
        )
        # No stop strings: both sides run exactly --tokens tokens (or stop at the same EOS).
        chatters[cache] = Chatter(
            Engine.load(args.gguf, settings),
            model="bench",
            n_ctx=args.n_ctx,
            stop=(),
            max_tokens=args.tokens,
            temperature=0.0,
        )
    engine = chatters["cold"].engine
    assert isinstance(engine, Engine)
    messages = ChatSession(model="bench", system_prompt=SYSTEM).messages()
    prompt = chatters["cold"].prompt_for([*messages, {"role": "user", "content": QUESTION}])

    runs: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
    for repeat in range(args.repeats + 1):  # the first round warms up: weights, graphs, caches
        for cache, chatter in chatters.items():
            ours = labdesk_once(chatter)
            theirs = raw_once(raw, prompt, args.tokens, reset=cache == "cold")
            if repeat:
                runs.setdefault((cache, "labdesk chat"), []).append(ours)
                runs.setdefault((cache, "llama-cpp-python"), []).append(theirs)

    rows = {}
    for (cache, name), timings in runs.items():
        ttft = min(r[0] for r in timings)
        rest = min(r[1] for r in timings)
        n = _tokens(engine, timings[-1][2])
        rows[cache, name] = (ttft, (n - 1) / rest if rest > 0 else float("inf"))
        same = timings[-1][2] == runs[cache, "llama-cpp-python"][-1][2]
        print(
            f"{cache:<13} {name:<18} {ttft * 1000:>9.2f} {rows[cache, name][1]:>13.1f} {same!s:>10}"
        )
        if name == "llama-cpp-python":
            ours_row, base = rows[cache, "labdesk chat"], rows[cache, name]
            print(
                f"{'':<13} labdesk overhead: TTFT {100 * (ours_row[0] / base[0] - 1):+.1f}%, "
                f"time per token {100 * (base[1] / ours_row[1] - 1):+.1f}%  (target <= +5%)"
            )
    print(f"prompt: {_tokens(engine, prompt)} tokens")
    for chatter in chatters.values():
        chatter.engine.close()  # type: ignore[attr-defined]
    raw.close()


if __name__ == "__main__":
    main()
