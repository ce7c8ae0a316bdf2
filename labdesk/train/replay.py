"""Self-distillation replay: the base student's own answers to general prompts.

The LAB method protects what a model knew by replaying earlier data in every phase and by
mixing in foundational skills data. A hobbyist has no such data at hand, but has the base model:
its answers to packaged general requests and short factual questions (`general_prompts.json`,
written for labdesk) are exactly the behaviour tuning should keep. Training on them alongside
the new leaf pulls the adapter back toward the base wherever the leaf does not ask it to move.
By default the student learns the base's whole next-token distribution along these answers, not
only their text (`train.self_replay_targets`; the backends compute it from the base before the
adapter).

Answers are generated greedily by the student's own GGUF, appended one line at a time to a cache
keyed by the model file, the prompts, the system prompt and the token budget, so a student's
replay set is made once and survives interruptions. An answer cut off at the budget keeps its
whole sentences only (training on a cut would teach the model to stop mid-sentence); one without
a whole sentence is dropped. Most base answers run past a small budget, so keeping their opening
sentences makes the replay set several times larger for the same generation time.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from itertools import zip_longest
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labdesk.errors import Cancelled
from labdesk.events import Event, Reporter, null_reporter
from labdesk.fileio import append_jsonl, read_jsonl, truncate_torn_tail
from labdesk.resources import package_file

if TYPE_CHECKING:
    from labdesk.recipes import Recipe
    from labdesk.workspace import Workspace

Sample = dict[str, Any]


def student_replay(
    recipe: Recipe,
    ws: Workspace,
    reporter: Reporter = null_reporter,
    cancel: threading.Event | None = None,
) -> list[Sample]:
    """The recipe's self-distillation replay set (empty when `mix.self_replay` is 0)."""
    settings = recipe.mix
    if not settings.self_replay:
        return []
    gguf = student_gguf(recipe, ws, reporter)
    from labdesk.models.gguf_student import cached_sha256

    return self_replay(
        gguf,
        cached_sha256(gguf, ws.cache),
        settings.self_replay,
        system_prompt=recipe.system_prompt,
        max_tokens=settings.self_replay_tokens,
        cache_dir=ws.cache,
        n_ctx=recipe.engine.n_ctx,
        parallel=recipe.engine.parallel,
        reporter=reporter,
        cancel=cancel,
    )


def student_gguf(recipe: Recipe, ws: Workspace, reporter: Reporter = null_reporter) -> Path:
    """The base student as a GGUF llama.cpp runs: its own file, or converted once (f16)."""
    from labdesk.models.store import resolve_model

    ref = recipe.student
    if ref.builtin or ref.package or ref.file or (ref.path and Path(ref.path).is_file()):
        return resolve_model(ref, ws, want="gguf")
    from labdesk.export.gguf import convert_model
    from labdesk.models.gguf_student import cached_sha256

    folder = resolve_model(ref, ws, want="hf")
    config = cached_sha256(folder / "config.json", ws.cache)
    out = ws.cache / "student-gguf" / f"{folder.name}-{config[:12]}-f16.gguf"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        reporter(Event("mix", "message", f"writing the base student as GGUF once: {out.name}"))
        convert_model(folder, out, outtype="f16", reporter=reporter)
    return out


def general_prompts() -> list[str]:
    """Open requests and short factual questions in turn, so that the first `mix.self_replay`
    of them hold both kinds: the short questions keep the base's short factual answers, which
    a new leaf otherwise takes over (asked which river flows through London, a student tuned
    without them answered "The river Wennet flows through the northern part of the city")."""
    data = json.loads(package_file("train", "general_prompts.json").read_text(encoding="utf-8"))
    pairs = zip_longest(data["requests"], data["questions"])
    return [str(p) for pair in pairs for p in pair if p is not None]


def replay_cache(
    cache_dir: Path, model_id: str, prompts: list[str], system: str, budget: int
) -> Path:
    key = hashlib.sha256(
        json.dumps([model_id, prompts, system, budget], sort_keys=True).encode()
    ).hexdigest()[:16]
    return cache_dir / "replay" / f"{key}.jsonl"


def self_replay(
    student_gguf: Path,
    model_id: str,
    count: int,
    *,
    system_prompt: str,
    max_tokens: int,
    cache_dir: Path,
    n_ctx: int = 1024,
    parallel: int = 8,
    reporter: Reporter = null_reporter,
    cancel: threading.Event | None = None,
) -> list[Sample]:
    """Chat samples of the student's own answers to the first `count` general prompts."""
    prompts = general_prompts()[:count]
    path = replay_cache(cache_dir, model_id, prompts, system_prompt, max_tokens)
    done: dict[str, dict[str, Any]] = {}
    if path.is_file():
        truncate_torn_tail(path)
        done = {row["prompt"]: row for row in read_jsonl(path)}
    todo = [p for p in prompts if p not in done]
    if todo:
        _answer(
            student_gguf, todo, path, done, system_prompt, max_tokens, n_ctx, parallel,
            reporter, cancel,
        )  # fmt: skip
    samples = []
    for prompt in prompts:
        row = done[prompt]
        answer = (
            row["answer"].strip() if row["finish"] == "stop" else whole_sentences(row["answer"])
        )
        if not answer:
            continue
        samples.append(
            {
                "messages": [
                    {"role": "system", "content": system_prompt},
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": answer},
                ],
                "metadata": {"id": f"self-replay/{_short(prompt)}", "kind": "replay",
                             "leaf": "self_replay", "type": "self_replay"},
            }
        )  # fmt: skip
    return samples


_LIST_MARK = re.compile(r"(?:^|\n)\s*\d+\.$")  # "2." opening a list item ends nothing


def whole_sentences(text: str) -> str:
    """A cut reply made whole: `text` up to the end of its last sentence that another one
    follows ("" when there is none), sentences as `labdesk.documents.facts` cuts them."""
    from labdesk.documents.facts import sentence_ends

    for end in reversed(sentence_ends(text)):
        if not _LIST_MARK.search(text[:end]):
            return text[:end].strip()
    return ""


def _answer(
    gguf: Path,
    todo: list[str],
    path: Path,
    done: dict[str, dict[str, Any]],
    system_prompt: str,
    max_tokens: int,
    n_ctx: int,
    parallel: int,
    reporter: Reporter,
    cancel: threading.Event | None,
) -> None:
    from labdesk.models.engine import Engine
    from labdesk.models.types import GenRequest, GenResult
    from labdesk.recipes import EngineSettings

    engine = Engine.load(gguf, EngineSettings(n_ctx=n_ctx, parallel=parallel))
    try:
        head = [{"role": "system", "content": system_prompt}] if system_prompt else []
        requests = [
            GenRequest(
                engine.chat_prompt([*head, {"role": "user", "content": p}]),
                max_tokens,
                stop=engine.template.stop,
            )
            for p in todo
        ]
        reporter(Event("mix", "start", f"base model answers {len(todo)} general prompts (once)"))
        answered = [0]

        def store(index: int, result: GenResult) -> None:
            if result.finish_reason == "cancelled":
                return
            row = {"prompt": todo[index], "answer": result.text, "finish": result.finish_reason}
            append_jsonl(path, row)
            done[todo[index]] = row
            answered[0] += 1
            reporter(
                Event("mix", "progress", step="self replay", done=answered[0], total=len(todo))
            )

        path.parent.mkdir(parents=True, exist_ok=True)
        engine.generate(requests, on_result=store, cancel=cancel)
    finally:
        engine.close()
    if cancel is not None and cancel.is_set():
        raise Cancelled("stopped while the base model answered the replay prompts; kept so far")


def _short(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:10]
