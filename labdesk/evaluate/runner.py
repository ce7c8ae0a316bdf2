"""Base vs tuned on the run's held-out questions, one model in memory at a time.

Each model (base, then tuned, both at the precision the run exported them: the merged GGUF
beside the base GGUF, never a quantized tuned model against a full-precision base) answers every
question in one batch — knowledge closed-book, the general probe — and scores the held-out
reference response of every skill item. No judge model is needed: answers are scored against
the facts they must state. Each answer and score is appended to ``evaluate/records.jsonl`` the
moment it exists, keyed by the model file and the item, so an interrupted evaluation resumes
where it stopped and a re-run with the same models is free.
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
from labdesk.evaluate.report import NOT_ASKED, Report, build_report
from labdesk.events import Event, Reporter, null_reporter
from labdesk.fileio import append_jsonl, read_jsonl, truncate_torn_tail, write_json, write_text
from labdesk.models.types import GenRequest, GenResult, ScoreRequest
from labdesk.recipes import Recipe
from labdesk.runs import RunPaths

ROLES = ("base", "tuned")


@dataclass(frozen=True)
class EvalModels:
    base: Path
    tuned: Path


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


def question_messages(system_prompt: str, item: EvalItem) -> list[dict[str, str]]:
    """What a model is asked: the question alone (closed-book), a grounded skill's text with it."""
    content = f"{item.context}\n\n{item.question}" if item.context else item.question
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*head, {"role": "user", "content": content}]


def answer_request(engine: Any, recipe: Recipe, item: EvalItem) -> GenRequest:
    """How an item is asked: `question_messages`, greedy, within the evaluation's budget."""
    prompt = engine.chat_prompt(question_messages(recipe.system_prompt, item))
    return GenRequest(prompt, recipe.evaluate.max_new_tokens, temperature=0.0, stop=engine.stop)


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
        budget = str(self.recipe.evaluate.max_new_tokens)
        return _key("answer", model, item.id, self.recipe.system_prompt, budget)

    def reference_key(self, role: str, item: EvalItem) -> str:
        model = _fingerprint(getattr(self.models, role))
        return _key("reference", model, item.id, self.recipe.system_prompt, item.reference)

    def run_model(self, role: str, items: list[EvalItem]) -> None:
        """Everything `role`'s model has to do, with the model loaded once."""
        asked = [i for i in items if i.kind != "skill"]
        todo = [i for i in asked if self.cache.get(self.answer_key(role, i)) is None]
        scored = [i for i in items if i.kind == "skill"]
        unscored = [i for i in scored if self.cache.get(self.reference_key(role, i)) is None]
        if not todo and not unscored:
            return
        from labdesk.models.engine import Engine

        engine = Engine.load(getattr(self.models, role), self.settings)
        try:
            self._answers(engine, role, todo)
            self._references(engine, role, unscored)
        finally:
            engine.close()
        self._check_cancel()

    def _answers(self, engine: Any, role: str, todo: list[EvalItem]) -> None:
        if not todo:
            return
        asked = [answer_request(engine, self.recipe, i) for i in todo]
        fits = [engine.count_tokens(r.prompt) + r.max_tokens <= engine.n_ctx for r in asked]
        for item, fit in zip(todo, fits, strict=True):
            if not fit:  # recorded, so the report says why this one has no answer
                self.cache.put(self.answer_key(role, item), NOT_ASKED)
        todo = [item for item, fit in zip(todo, fits, strict=True) if fit]
        requests = [r for r, fit in zip(asked, fits, strict=True) if fit]
        done = [0]

        def store(index: int, result: GenResult) -> None:
            if result.finish_reason == "cancelled":
                return
            self.cache.put(self.answer_key(role, todo[index]), result.text.strip())
            done[0] += 1
            self.reporter(Event("evaluate", step=f"{role} answers", done=done[0], total=len(todo)))

        engine.generate(requests, on_result=store, cancel=self.cancel)
        self._check_cancel()

    def _references(self, engine: Any, role: str, todo: list[EvalItem]) -> None:
        """Mean log-probability per token of each skill item's reference response."""
        from labdesk.generate.judges import read_reply, reply_request

        if not todo:
            return
        requests: list[ScoreRequest] = []
        fitting: list[EvalItem] = []
        for item in todo:
            messages = question_messages(self.recipe.system_prompt, item)
            request = reply_request(engine, messages, item.reference)
            if engine.count_tokens(request.prompt + request.continuation) > engine.n_ctx:
                self.cache.put(self.reference_key(role, item), NOT_ASKED)
                continue
            requests.append(request)
            fitting.append(item)
        todo = fitting
        results = engine.score(requests, cancel=self.cancel)
        self._check_cancel()
        for item, request, result in zip(todo, requests, results, strict=True):
            reply = read_reply(engine, request, item.reference, result)
            self.cache.put(self.reference_key(role, item), reply.mean)
        self.reporter(Event("evaluate", step=f"{role} references", done=len(todo), total=len(todo)))

    def lookup(self) -> Callable[[str, str, EvalItem], Any]:
        def get(what: str, role: str, item: EvalItem) -> Any:
            key = self.answer_key if what == "answer" else self.reference_key
            return self.cache.get(key(role, item))

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
    for role in ROLES:
        path = getattr(models, role)
        if not Path(path).is_file():
            raise ModelError(f"the {role} model file does not exist", where=str(path))
    settings = recipe.evaluate
    base = recipe.source.parent if recipe.source else None
    items = items_for_run(run, settings.general_questions, settings.probes, base)
    counts = {
        kind: sum(1 for i in items if i.kind == kind) for kind in ("knowledge", "skill", "general")
    }
    reporter(
        Event(
            "evaluate",
            "start",
            f"{counts['knowledge']} closed-book questions, {counts['skill']} skill references, "
            f"{counts['general']} general questions",
        )
    )
    job = _Evaluation(run, recipe, models, reporter, cancel)
    for role in ROLES:
        job.run_model(role, items)
    report = build_report(
        run.root.name,
        items,
        job.lookup(),
        models={role: str(getattr(models, role)) for role in ROLES},
        examples=settings.examples,
    )
    write_json(run.evaluation / "report.json", report.to_dict())
    write_text(run.evaluation / "report.md", report.markdown())
    reporter(Event("evaluate", "done", f"report: {run.evaluation / 'report.md'}"))
    return report


def read_report(run: RunPaths) -> dict[str, Any] | None:
    path = run.evaluation / "report.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
