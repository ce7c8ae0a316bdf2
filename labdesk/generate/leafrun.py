"""Run one leaf's pipeline round by round: batched requests, cached replies, decided samples.

Every Write step sends one request per live candidate of the round to the teacher at once, so
its parallel slots stay full; every Judged step scores all live candidates in one batch. Each
reply and each score is cached as it arrives and each sample is appended to the leaf's files
the moment a step decides it; a resumed run replays the round from the cache and writes only
what was not written yet.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from labdesk.errors import Cancelled
from labdesk.events import Event, Reporter, null_reporter
from labdesk.generate import templates as t
from labdesk.generate.candidates import Candidate, derive_seed, to_record
from labdesk.generate.judges import run_judges
from labdesk.generate.models import Models, TextModel
from labdesk.generate.pipelines import Pipeline
from labdesk.generate.state import LeafFiles, ReplyCache
from labdesk.generate.steps import Check, Judged, Write
from labdesk.models.types import GenRequest, GenResult, ScoreRequest, ScoreResult


class LeafRun:
    """Runs rounds of `pipeline` for one leaf; `files=None` runs without writing (preview)."""

    def __init__(
        self,
        pipeline: Pipeline,
        models: Models,
        *,
        system_prompt: str,
        files: LeafFiles | None = None,
        decided: set[str] | None = None,
        reporter: Reporter = null_reporter,
        cancel: threading.Event | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.models = models
        self.settings = pipeline.settings
        self.system_prompt = system_prompt
        self.files = files
        self.cache = ReplyCache(files.cache if files else None)
        self.decided = decided if decided is not None else set()
        self.reporter = reporter
        self.cancel = cancel
        self.tokens: Counter[str] = Counter()
        self.accepted = 0
        self.rejected = 0

    # -- rounds ------------------------------------------------------------------------------

    def run_round(
        self,
        round_: int,
        count: int,
        accepted: Sequence[dict[str, Any]] = (),
        *,
        augment_chunks: int | None = None,
    ) -> list[Candidate]:
        """Build round `round_`'s candidates, take them through every step, decide each one."""
        candidates = self.pipeline.candidates(round_, count, accepted)
        if augment_chunks is not None:  # previews show a few augmentations, not every chunk's
            qa = [c for c in candidates if c.type == "qa"]
            extra = [c for c in candidates if c.type != "qa"]
            candidates = qa + extra[:augment_chunks]
        self.take(candidates)
        self._accept(candidates)
        return candidates

    def take(self, candidates: list[Candidate]) -> None:
        """Take `candidates` through every step; the live ones remain to be accepted."""
        for step in self.pipeline.steps:
            if isinstance(step, Write):
                self._write(step, candidates)
            elif isinstance(step, Judged):
                self._judge(step, candidates)
            else:
                self._check(step, candidates)
            self._check_cancel()

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("generation stopped; everything decided so far is kept")

    # -- steps -------------------------------------------------------------------------------

    def _write(self, step: Write, candidates: list[Candidate]) -> None:
        live = [c for c in candidates if c.alive and c.type in step.templates]
        if not live:
            return
        model = self.models.get(step.role)
        name = self.models.name(step.role)
        pending: list[tuple[Candidate, GenRequest, str]] = []
        done = 0
        started = time.perf_counter()
        fresh_tokens = 0

        def finish(candidate: Candidate, request: GenRequest, result: GenResult) -> None:
            nonlocal done
            done += 1
            self.tokens[step.role] += result.tokens
            self.tokens["prompt"] += result.prompt_tokens
            if result.finish_reason == "length":
                self._reject(
                    candidate,
                    step.name,
                    f"cut off: the reply reached its {request.max_tokens}-token budget "
                    "before it ended",
                )
            else:
                text = result.text.split(t.SEPARATOR)[0].strip()
                if step.lead is not None:
                    text = f"{step.lead(candidate)} {text}".strip()
                candidate.fields[step.field] = text
                candidate.trace.append((step.field, text))
            elapsed = time.perf_counter() - started
            self._progress(step.name, done, len(live), fresh_tokens / elapsed if elapsed else 0.0)

        for candidate in live:
            request = self._request(step, candidate, model)
            if request is None:
                done += 1
                continue
            key = ReplyCache.key(name, request)
            cached = self.cache.get(key)
            if cached is not None:
                finish(candidate, request, cached)
            else:
                pending.append((candidate, request, key))
        if not pending:
            return

        def on_result(index: int, result: GenResult) -> None:
            nonlocal fresh_tokens
            if result.finish_reason == "cancelled":
                return
            candidate, request, key = pending[index]
            fresh_tokens += result.tokens
            result = replace(result, text=_clean(result.text))
            self.cache.put(key, result)
            finish(candidate, request, result)

        model.generate([r for _, r, _ in pending], on_result=on_result, cancel=self.cancel)

    def _request(self, step: Write, candidate: Candidate, model: TextModel) -> GenRequest | None:
        """The step's request, with as many of the candidate's examples as fit the context."""
        budget = (
            self.settings.short_tokens
            if candidate.type in step.short
            else self.settings.max_new_tokens
        )
        values = step.variables(candidate)
        values["words"] = str(max(4, int(budget * step.words)))
        room = model.n_ctx - budget
        shown = len(candidate.examples)
        while True:
            examples = candidate.examples[:shown]
            if step.examples is not None:
                values["examples"] = step.examples(examples)
            prompt = self._prompt(step, candidate, model, values, examples)
            length = model.count_tokens(prompt)
            if length <= room:
                break
            if shown <= 1:
                self._reject(
                    candidate,
                    step.name,
                    f"prompt of {length} tokens does not fit the context window "
                    f"({model.n_ctx} minus {budget} for the reply): lower "
                    "generate.chunk_tokens or shorten the seeds, or raise engine.n_ctx",
                )
                return None
            shown -= 1
        completion = step.style == "completion"
        stop = (t.SEPARATOR, "\n") if completion and step.short else (t.SEPARATOR,)
        return GenRequest(
            prompt,
            budget,
            temperature=0.0 if step.greedy else self.settings.temperature,
            top_p=self.settings.top_p,
            seed=derive_seed(self.settings.seed, candidate.id, step.name),
            stop=stop if completion else model.stop,
        )

    def _prompt(
        self,
        step: Write,
        candidate: Candidate,
        model: TextModel,
        values: dict[str, str],
        examples: list[Any],
    ) -> str:
        text = t.render(step.templates[candidate.type], **values)
        if step.lead is not None:  # the reply continues the prompt's last line
            lead = step.lead(candidate)
            return f"{text} {lead}" if lead else text
        if step.style == "completion":
            return text + ("" if text.endswith("\n") else "\n")
        if step.messages is not None:
            shown = replace(candidate, examples=examples)
            return model.chat_prompt(step.messages(shown, text))
        system = t.render("system_teacher")
        return model.chat_prompt(
            [{"role": "system", "content": system}, {"role": "user", "content": text}]
        )

    def _judge(self, step: Judged, candidates: list[Candidate]) -> None:
        live = [c for c in candidates if c.alive and c.type in step.types]
        if not live:
            return
        scorer = _CachedScorer(self.models.judge, self.models.judge_name, self.cache, self.tokens)
        verdicts = run_judges([step.judge], [step.pair(c) for c in live], scorer, self.cancel)
        for done, (candidate, verdict) in enumerate(zip(live, verdicts, strict=True), 1):
            found = verdict.get(step.judge.name)
            if found is None:
                continue
            candidate.scores[step.judge.name] = round(found.value, 4)
            candidate.trace.append((step.name, found.reason))
            if not found.ok:
                self._reject(candidate, step.name, found.reason)
            self._progress(step.name, done, len(live), 0.0)

    def _check(self, step: Check, candidates: list[Candidate]) -> None:
        live = [c for c in candidates if c.alive and c.type in step.types]
        for candidate in live:
            reason = step.run(candidate)
            if reason is not None:
                self._reject(candidate, step.name, reason)

    def _accept(self, candidates: list[Candidate]) -> None:
        """The last, ordered decision: drop near-duplicates of seeds and accepted samples."""
        for candidate in candidates:
            if not candidate.alive:
                continue
            match = self.pipeline.duplicate_of(candidate)
            if match:
                self._reject(
                    candidate, "dedup", f"near-duplicate of {match[0]} (similarity {match[1]:.2f})"
                )
                continue
            self.pipeline.remember(candidate)
            candidate.trace.append(("accepted", ""))
            self.accepted += 1
            self._record(candidate, accepted=True)
        self._progress("accept", len(candidates), len(candidates), 0.0)

    # -- decisions ---------------------------------------------------------------------------

    def _reject(self, candidate: Candidate, step: str, reason: str) -> None:
        candidate.reject(step, reason)
        self.rejected += 1
        self._record(candidate, accepted=False)

    def _record(self, candidate: Candidate, *, accepted: bool) -> None:
        if self.files is None or candidate.id in self.decided:
            return
        user = self.pipeline.user_message(candidate)
        record = to_record(candidate, self.pipeline.leaf, system=self.system_prompt, user=user)
        self.files.append(record, accepted=accepted)
        self.decided.add(candidate.id)

    def _progress(self, step: str, done: int, total: int, tokens_per_s: float) -> None:
        self.reporter(
            Event(
                "generate",
                "progress",
                leaf=self.pipeline.leaf.path,
                step=step,
                done=done,
                total=total,
                accepted=self.accepted,
                rejected=self.rejected,
                metrics={"tok/s": round(tokens_per_s, 1)} if tokens_per_s else {},
            )
        )


class _CachedScorer:
    """The judge model with its scores cached in the leaf's reply cache (for resuming)."""

    def __init__(self, model: TextModel, name: str, cache: ReplyCache, tokens: Counter[str]):
        self.model = model
        self.name = name
        self.cache = cache
        self.tokens = tokens
        self.chat_prompt: Callable[..., str] = model.chat_prompt
        self.count_tokens: Callable[[str], int] = model.count_tokens
        self.can_score: Callable[[], bool] = model.can_score

    def generate(
        self, requests: Sequence[GenRequest], *, cancel: threading.Event | None = None
    ) -> list[GenResult]:
        """Verdicts asked of a judge that cannot be scored, cached as the teacher's replies."""
        keys = [ReplyCache.key(self.name, r) for r in requests]

        def keep(key: str, result: GenResult) -> None:
            if result.finish_reason != "cancelled":
                self.cache.put(key, result)
                self.tokens["judge"] += result.tokens

        fresh = partial(self.model.generate, cancel=cancel)
        return _through_cache(requests, keys, self.cache.get, fresh, keep)

    def score(
        self, requests: Sequence[ScoreRequest], *, cancel: threading.Event | None = None
    ) -> list[ScoreResult]:
        keys = [ReplyCache.score_key(self.name, r) for r in requests]

        def keep(key: str, result: ScoreResult) -> None:
            self.cache.put_score(key, result)
            self.tokens["judge"] += len(result.tokens)
            self.tokens["prompt"] += result.prompt_tokens

        fresh = partial(self.model.score, cancel=cancel)
        return _through_cache(requests, keys, self.cache.get_score, fresh, keep)


def _through_cache(
    requests: Sequence[Any],
    keys: list[str],
    get: Callable[[str], Any],
    compute: Callable[[list[Any]], list[Any]],
    keep: Callable[[str, Any], None],
) -> list[Any]:
    """Each request's cached result, computing the missing ones together; `keep` caches one."""
    found = [get(k) for k in keys]
    todo = [i for i, r in enumerate(found) if r is None]
    if todo:
        for i, result in zip(todo, compute([requests[i] for i in todo]), strict=True):
            keep(keys[i], result)
            found[i] = result
    return found


def _clean(text: str) -> str:
    """`text` without lone surrogates, which UTF-8 files cannot hold."""
    return text.encode("utf-8", "replace").decode("utf-8")
