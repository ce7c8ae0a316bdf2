"""Base vs tuned on the run's held-out questions, judged locally; every answer cached as made.

The flow, one model in memory at a time: each model (base, then tuned) answers the open
questions (skills, general) in one batch and picks among the options of each multiple-choice
item; then the judge grades every open answer. Each answer, choice and verdict is appended to
``evaluate/records.jsonl`` the moment it exists, keyed by the model file and the item, so an
interrupted evaluation resumes where it stopped and a re-run with the same models is free.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labdesk.errors import Cancelled, ModelError
from labdesk.evaluate.items import EvalItem, items_for_run
from labdesk.evaluate.judge import VERDICT_TOKENS, judge_messages, verdict_request
from labdesk.evaluate.report import Report, build_report
from labdesk.events import Event, Reporter, null_reporter
from labdesk.fileio import append_jsonl, read_jsonl, truncate_torn_tail, write_json, write_text
from labdesk.models.types import GenRequest, GenResult
from labdesk.recipes import Recipe
from labdesk.runs import RunPaths

ROLES = ("base", "tuned")
NOT_ASKED = "[not asked: the question does not fit the model's context]"


@dataclass(frozen=True)
class EvalModels:
    base: Path
    tuned: Path
    judge: Path


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"


def _key(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


class RecordCache:
    """Append-only JSONL of ``{"key", "value"}``; the last record for a key wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._values: dict[str, Any] = {}
        if path.is_file():
            truncate_torn_tail(path)  # a killed run may have left half a line
            for row in read_jsonl(path):
                self._values[row["key"]] = row["value"]

    def get(self, key: str) -> Any:
        return self._values.get(key)

    def put(self, key: str, value: Any) -> None:
        append_jsonl(self.path, {"key": key, "value": value})
        self._values[key] = value


def _question_messages(system_prompt: str, item: EvalItem) -> list[dict[str, str]]:
    content = f"{item.context}\n\n{item.question}" if item.context else item.question
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*head, {"role": "user", "content": content}]


class _Evaluation:
    def __init__(
        self,
        run: RunPaths,
        recipe: Recipe,
        models: EvalModels,
        reporter: Reporter,
        cancel: threading.Event | None,
    ) -> None:
        self.run, self.recipe, self.models = run, recipe, models
        self.reporter, self.cancel = reporter, cancel
        self.cache = RecordCache(run.evaluation / "records.jsonl")
        self.settings = recipe.engine

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("evaluation stopped; every answer so far is kept, run again to resume")

    def answer_key(self, role: str, item: EvalItem) -> str:
        model = _fingerprint(getattr(self.models, role))
        return _key(
            "answer",
            model,
            item.id,
            self.recipe.system_prompt,
            str(self.recipe.evaluate.max_new_tokens),
        )

    def choice_key(self, role: str, item: EvalItem) -> str:
        model = _fingerprint(getattr(self.models, role))
        return _key("choice", model, item.id, self.recipe.system_prompt)

    def verdict_key(self, item: EvalItem, answer: str) -> str:
        return _key("verdict", _fingerprint(self.models.judge), item.id, answer)

    def answers(self, role: str, items: list[EvalItem]) -> None:
        todo = [i for i in items if self.cache.get(self.answer_key(role, i)) is None]
        if not todo:
            return
        from labdesk.models.engine import Engine

        engine = Engine.load(getattr(self.models, role), self.settings)
        try:
            stop = engine.template.stop
            budget = self.recipe.evaluate.max_new_tokens
            prompts = [
                engine.chat_prompt(_question_messages(self.recipe.system_prompt, i)) for i in todo
            ]
            fits = [engine.count_tokens(p) + budget <= engine.n_ctx for p in prompts]
            for item, fit in zip(todo, fits, strict=True):
                if not fit:  # recorded, so the report says why this one has no answer
                    self.cache.put(self.answer_key(role, item), NOT_ASKED)
            todo = [item for item, fit in zip(todo, fits, strict=True) if fit]
            requests = [
                GenRequest(p, budget, temperature=0.0, stop=stop)
                for p, fit in zip(prompts, fits, strict=True)
                if fit
            ]
            done = [0]

            def store(index: int, result: GenResult) -> None:
                if result.finish_reason == "cancelled":
                    return
                self.cache.put(self.answer_key(role, todo[index]), result.text.strip())
                done[0] += 1
                self.reporter(
                    Event("evaluate", step=f"{role} answers", done=done[0], total=len(todo))
                )

            engine.generate(requests, on_result=store, cancel=self.cancel)
        finally:
            engine.close()
        self._check_cancel()

    def choices(self, role: str, items: list[EvalItem]) -> None:
        todo = [i for i in items if self.cache.get(self.choice_key(role, i)) is None]
        if not todo:
            return
        from labdesk.evaluate.likelihood import ChoiceScorer

        with ChoiceScorer(getattr(self.models, role), self.settings) as scorer:
            for done, item in enumerate(todo, 1):
                self._check_cancel()
                messages = _question_messages(self.recipe.system_prompt, item)
                if not scorer.fits(
                    messages, item.options
                ):  # recorded: the report says "not scored"
                    self.cache.put(self.choice_key(role, item), {"choice": None, "scores": None})
                    continue
                scores = scorer.option_scores(messages, item.options)
                choice = max(range(len(scores)), key=scores.__getitem__)
                self.cache.put(self.choice_key(role, item), {"choice": choice, "scores": scores})
                self.reporter(Event("evaluate", step=f"{role} choices", done=done, total=len(todo)))

    def verdicts(self, items: list[EvalItem]) -> None:
        pending = []
        for item in items:
            for role in ROLES:
                answer = self.cache.get(self.answer_key(role, item))
                if answer in (None, NOT_ASKED):
                    continue  # nothing to judge; the report shows the answer's note
                if self.cache.get(self.verdict_key(item, answer)) is None:
                    pending.append((item, answer))
        pending = list({self.verdict_key(i, a): (i, a) for i, a in pending}.values())
        if not pending:
            return
        from labdesk.models.engine import Engine

        engine = Engine.load(self.models.judge, self.settings)
        try:
            prompts = [engine.chat_prompt(judge_messages(i, a)) for i, a in pending]
            fits = [engine.count_tokens(p) + VERDICT_TOKENS <= engine.n_ctx for p in prompts]
            for (item, answer), fit in zip(pending, fits, strict=True):
                if not fit:
                    reason = "not judged: the question and answer overflow the judge's context"
                    self.cache.put(
                        self.verdict_key(item, answer), {"score": None, "reason": reason}
                    )
            pending = [p for p, fit in zip(pending, fits, strict=True) if fit]
            requests = [verdict_request(p) for p, fit in zip(prompts, fits, strict=True) if fit]
            done = [0]

            def store(index: int, result: GenResult) -> None:
                if result.finish_reason == "cancelled":
                    return
                item, answer = pending[index]
                value = result.value if isinstance(result.value, dict) else None
                verdict = (
                    {"score": int(value["score"]), "reason": str(value["reason"])}
                    if value
                    else {"score": None, "reason": f"no verdict ({result.finish_reason})"}
                )
                self.cache.put(self.verdict_key(item, answer), verdict)
                done[0] += 1
                self.reporter(Event("evaluate", step="judging", done=done[0], total=len(pending)))

            engine.generate(requests, on_result=store, cancel=self.cancel)
        finally:
            engine.close()
        self._check_cancel()

    def lookup(self) -> Callable[[str, str, EvalItem], Any]:
        def get(what: str, role: str, item: EvalItem) -> Any:
            if what == "answer":
                return self.cache.get(self.answer_key(role, item))
            if what == "choice":
                return self.cache.get(self.choice_key(role, item))
            answer = self.cache.get(self.answer_key(role, item))
            return None if answer is None else self.cache.get(self.verdict_key(item, answer))

        return get


def evaluate_run(
    run: RunPaths,
    recipe: Recipe,
    models: EvalModels,
    *,
    reporter: Reporter = null_reporter,
    cancel: threading.Event | None = None,
) -> Report:
    """Evaluate base vs tuned on `run`; writes ``evaluate/report.json`` and ``report.md``."""
    for role in ("base", "tuned", "judge"):
        path = getattr(models, role)
        if not Path(path).is_file():
            raise ModelError(f"the {role} model file does not exist", where=str(path))
    items = items_for_run(run, recipe.evaluate.forgetting_questions)
    open_items = [i for i in items if i.kind != "knowledge"]
    choice_items = [i for i in items if i.kind == "knowledge"]
    reporter(
        Event(
            "evaluate",
            "start",
            f"{len(open_items)} open questions, {len(choice_items)} multiple-choice items",
        )
    )
    job = _Evaluation(run, recipe, models, reporter, cancel)
    for role in ROLES:
        job.answers(role, open_items)
        job.choices(role, choice_items)
    job.verdicts(open_items)
    report = build_report(
        run.root.name,
        items,
        job.lookup(),
        models={role: str(getattr(models, role)) for role in ("base", "tuned", "judge")},
    )
    write_json(run.evaluation / "report.json", report.to_dict())
    write_text(run.evaluation / "report.md", report.markdown())
    reporter(Event("evaluate", "done", f"report: {run.evaluation / 'report.md'}"))
    return report


def read_report(run: RunPaths) -> dict[str, Any] | None:
    path = run.evaluation / "report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
