"""The evaluation report: per leaf base, tuned and delta, with the answers behind every score."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import groupby
from typing import Any

from labdesk.evaluate.items import EvalItem

Lookup = Callable[[str, str, EvalItem], Any]
ROLES = ("base", "tuned")


@dataclass
class LeafResult:
    leaf: str
    kind: str
    metric: str
    """"accuracy" (knowledge, 0–1) or "judge score" (skills and general questions, 1–10)."""
    base: float | None
    tuned: float | None
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def delta(self) -> float | None:
        return None if self.base is None or self.tuned is None else self.tuned - self.base

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta}


@dataclass
class Report:
    run: str
    models: dict[str, str]
    leaves: list[LeafResult]
    forgetting: LeafResult | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "models": self.models,
            "leaves": [leaf.to_dict() for leaf in self.leaves],
            "forgetting": self.forgetting.to_dict() if self.forgetting else None,
        }

    def rows(self) -> list[LeafResult]:
        return [*self.leaves, *([self.forgetting] if self.forgetting else [])]

    def markdown(self) -> str:
        lines = [
            f"# Evaluation of run `{self.run}`",
            "",
            *(f"- {role}: `{path}`" for role, path in self.models.items()),
            "",
            "| leaf | kind | metric | base | tuned | delta |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.rows():
            lines.append(
                f"| {row.leaf} | {row.kind} | {row.metric} | {fmt(row.base, row.metric)} "
                f"| {fmt(row.tuned, row.metric)} | {fmt_delta(row.delta, row.metric)} |"
            )
        for row in self.rows():
            lines += ["", f"## {row.leaf} ({row.kind})"]
            for item in row.items:
                lines += ["", f"**Q:** {item['question']}"]
                if item.get("reference"):
                    lines.append(f"**Reference:** {item['reference']}")
                for index, option in enumerate(item.get("options", [])):
                    mark = " (right)" if index == item["answer_index"] else ""
                    lines.append(f"- {chr(65 + index)}. {option}{mark}")
                for role in ROLES:
                    lines.append(f"- **{role}:** {_describe(item[role])}")
        return "\n".join(lines) + "\n"


def fmt(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    return f"{value:.0%}" if metric == "accuracy" else f"{value:.1f}"


def fmt_delta(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    return f"{value * 100:+.0f} pts" if metric == "accuracy" else f"{value:+.1f}"


def _describe(result: dict[str, Any]) -> str:
    if "choice" in result:
        if result["choice"] is None:
            return "not scored"
        verdict = "right" if result["correct"] else "wrong"
        return f"chose {chr(65 + result['choice'])} ({verdict})"
    score = "not judged" if result.get("score") is None else f"{result['score']}/10"
    answer = (result.get("answer") or "").replace("\n", " ")
    return f"{score}: {answer!r} (judge: {result.get('reason') or '–'})"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _knowledge(leaf: str, items: list[EvalItem], get: Lookup) -> LeafResult:
    rows: list[dict[str, Any]] = []
    correct: dict[str, list[float]] = {role: [] for role in ROLES}
    for item in items:
        row: dict[str, Any] = {
            "question": item.question,
            "reference": item.reference,
            "options": list(item.options),
            "answer_index": item.answer_index,
        }
        for role in ROLES:
            picked = get("choice", role, item) or {}
            choice = picked.get("choice")
            row[role] = {
                "choice": choice,
                "answer": None if choice is None else item.options[choice],
                "correct": choice == item.answer_index,
                "scores": picked.get("scores"),
            }
            if choice is not None:
                correct[role].append(float(choice == item.answer_index))
        rows.append(row)
    return LeafResult(
        leaf, "knowledge", "accuracy", _mean(correct["base"]), _mean(correct["tuned"]), rows
    )


def _judged(leaf: str, kind: str, items: list[EvalItem], get: Lookup) -> LeafResult:
    rows: list[dict[str, Any]] = []
    scores: dict[str, list[float]] = {role: [] for role in ROLES}
    for item in items:
        row: dict[str, Any] = {"question": item.question, "reference": item.reference}
        if item.context:
            row["context"] = item.context
        for role in ROLES:
            verdict = get("verdict", role, item) or {}
            row[role] = {
                "answer": get("answer", role, item),
                "score": verdict.get("score"),
                "reason": verdict.get("reason"),
            }
            if verdict.get("score") is not None:
                scores[role].append(float(verdict["score"]))
        rows.append(row)
    return LeafResult(
        leaf, kind, "judge score", _mean(scores["base"]), _mean(scores["tuned"]), rows
    )


def build_report(run: str, items: list[EvalItem], get: Lookup, models: dict[str, str]) -> Report:
    leaves: list[LeafResult] = []
    forgetting = None
    ordered = sorted(items, key=lambda i: (i.kind == "general", i.leaf))
    for (leaf, kind), group in groupby(ordered, key=lambda i: (i.leaf, i.kind)):
        members = list(group)
        if kind == "knowledge":
            leaves.append(_knowledge(leaf, members, get))
        elif kind == "general":
            forgetting = _judged("general questions (forgetting check)", "general", members, get)
        else:
            leaves.append(_judged(leaf, kind, members, get))
    return Report(run, models, leaves, forgetting)
