"""Run one leaf's pipeline round by round: batched requests, cached replies, decided samples.

Every Ask step sends one request per live candidate of the round to the engine at once, so its
parallel slots stay full. Each reply is cached as it arrives and each sample is appended to the
leaf's files the moment a step decides it; a resumed run replays the round from the cache and
writes only what was not written yet.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from labdesk.errors import Cancelled
from labdesk.events import Event, Reporter, null_reporter
from labdesk.generate import templates as t
from labdesk.generate.candidates import Candidate, derive_seed, to_record
from labdesk.generate.pipelines import Pipeline
from labdesk.generate.state import LeafFiles, ReplyCache
from labdesk.generate.steps import Ask, Check, Role
from labdesk.models.types import GenRequest, GenResult


class TextModel(Protocol):
    """What generation needs of a model: labdesk's Engine, or a one-at-a-time baseline."""

    n_ctx: int

    def generate(
        self,
        requests: Sequence[GenRequest],
        *,
        on_result: Callable[[int, GenResult], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenResult]: ...

    def chat_prompt(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str: ...

    def count_tokens(self, text: str) -> int: ...


@dataclass(frozen=True)
class Models:
    teacher: TextModel
    judge: TextModel
    teacher_name: str
    judge_name: str

    def get(self, role: Role) -> TextModel:
        return self.teacher if role == "teacher" else self.judge

    def name(self, role: Role) -> str:
        return self.teacher_name if role == "teacher" else self.judge_name


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
        sample = "\n".join(qa.question + " " + qa.answer for s in pipeline.seeds for qa in s.qa)
        self._chars_per_token = {
            role: _chars_per_token(models.get(role), sample) for role in ("teacher", "judge")
        }

    # -- rounds ------------------------------------------------------------------------------

    def run_round(
        self, round_: int, count: int, *, augment_chunks: int | None = None
    ) -> list[Candidate]:
        """Build round `round_`'s candidates, take them through every step, decide each one."""
        candidates = self.pipeline.candidates(round_, count)
        if augment_chunks is not None:  # previews show a few augmentations, not every chunk's
            qa = [c for c in candidates if c.type == "qa"]
            extra = [c for c in candidates if c.type != "qa"]
            candidates = qa + extra[:augment_chunks]
        for step in self.pipeline.steps:
            if isinstance(step, Ask):
                self._ask(step, candidates)
            else:
                self._check(step, candidates)
        self._accept(candidates)
        return candidates

    # -- steps -------------------------------------------------------------------------------

    def _ask(self, step: Ask, candidates: list[Candidate]) -> None:
        live = [c for c in candidates if c.alive and c.type in step.templates]
        if not live:
            return
        model = self.models.get(step.role)
        model_name = self.models.name(step.role)
        teacher = step.role == "teacher"
        max_tokens = self.settings.max_new_tokens if teacher else self.settings.judge_max_tokens
        schema = step.schema(self._string_budget(step, model, max_tokens))
        pending: list[tuple[Candidate, GenRequest, str]] = []
        done = 0
        started = time.perf_counter()
        fresh_tokens = 0

        def finish(candidate: Candidate, result: GenResult) -> None:
            nonlocal done
            done += 1
            self.tokens["teacher" if teacher else "judge"] += result.tokens
            self.tokens["prompt"] += result.prompt_tokens
            if result.value is None:
                self._reject(
                    candidate,
                    step.name,
                    f"reply cut off at {max_tokens} tokens before it was complete",
                )
            elif (reason := step.read(candidate, result.value)) is not None:
                self._reject(candidate, step.name, reason)
            elapsed = time.perf_counter() - started
            self._progress(step.name, done, len(live), fresh_tokens / elapsed if elapsed else 0.0)

        for candidate in live:
            prompt = self._prompt(step, candidate, model, max_tokens)
            if prompt is None:
                done += 1
                continue
            request = GenRequest(
                prompt,
                max_tokens,
                temperature=self.settings.temperature if teacher else 0.0,
                top_p=self.settings.top_p if teacher else 1.0,
                seed=derive_seed(self.settings.seed, candidate.id, step.name),
                schema=schema,
            )
            key = ReplyCache.key(model_name, request)
            cached = self.cache.get(key)
            if cached is not None:
                finish(candidate, cached)
            else:
                pending.append((candidate, request, key))
        if not pending:
            return

        def on_result(index: int, result: GenResult) -> None:
            nonlocal fresh_tokens
            if result.finish_reason == "cancelled":
                return
            candidate, _, key = pending[index]
            fresh_tokens += result.tokens
            result = replace(result, text=_clean(result.text), value=_clean(result.value))
            self.cache.put(key, result)
            finish(candidate, result)

        model.generate([r for _, r, _ in pending], on_result=on_result, cancel=self.cancel)
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("generation stopped; everything decided so far is kept")

    def _string_budget(self, step: Ask, model: TextModel, max_tokens: int) -> int:
        """Characters the reply's strings may hold so that it closes within `max_tokens`.

        The JSON around the strings is measured with this model's tokenizer; the strings get
        what is left at a cautious share of the leaf text's characters per token.
        """
        skeleton = json.dumps(_skeleton(step.schema(16)))
        room = max_tokens - model.count_tokens(skeleton) - 2
        return max(16, int(room * self._chars_per_token[step.role] * 0.6))

    def _prompt(
        self, step: Ask, candidate: Candidate, model: TextModel, max_tokens: int
    ) -> str | None:
        """The chat prompt with as many of the candidate's examples as fit the context window."""
        name = step.templates[candidate.type]
        values = step.variables(candidate)
        system = t.render("system_teacher" if step.role == "teacher" else "system_judge")
        room = model.n_ctx - max_tokens
        shown = len(candidate.examples) if step.examples else 0
        while True:
            if step.examples is not None:
                values["examples"] = step.examples(candidate.examples[: max(shown, 1)])
            prompt = model.chat_prompt(
                [
                    {"role": "system", "content": system},
                    {"role": "user", "content": t.render(name, **values)},
                ]
            )
            length = model.count_tokens(prompt)
            if length <= room:
                return prompt
            if shown <= 1:
                self._reject(
                    candidate,
                    step.name,
                    f"prompt of {length} tokens does not fit the context window "
                    f"({model.n_ctx} minus {max_tokens} for the reply): lower "
                    "generate.chunk_tokens or shorten the seeds, or raise engine.n_ctx",
                )
                return None
            shown -= 1

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
            self._write(candidate, accepted=True)
        self._progress("accept", len(candidates), len(candidates), 0.0)

    # -- decisions ---------------------------------------------------------------------------

    def _reject(self, candidate: Candidate, step: str, reason: str) -> None:
        candidate.reject(step, reason)
        self.rejected += 1
        self._write(candidate, accepted=False)

    def _write(self, candidate: Candidate, *, accepted: bool) -> None:
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


def _clean(value: Any) -> Any:
    """`value` without lone surrogates: JSON allows "\\udfff" escapes, UTF-8 files do not."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _skeleton(schema: dict[str, Any]) -> Any:
    """The reply with empty strings and the longest enum values: its fixed JSON part."""
    if "enum" in schema:
        return max(schema["enum"], key=lambda v: len(json.dumps(v)))
    if schema.get("type") == "object":
        return {name: _skeleton(sub) for name, sub in schema["properties"].items()}
    return ""


def _chars_per_token(model: TextModel, sample: str) -> float:
    """How many characters one token of this model's tokenizer holds on the leaf's own text."""
    sample = sample[:4000] or "The quick brown fox jumps over the lazy dog."
    return min(6.0, max(1.0, len(sample) / max(1, model.count_tokens(sample))))
