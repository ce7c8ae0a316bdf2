"""The evaluation report: per leaf base vs tuned with n and a 95 % interval, and the answers.

Three metrics, each "higher is better": closed-book accuracy (knowledge leaves: the share of
questions whose answer states the expected facts), general accuracy (the forgetting probe, the
same rule), and reference log-likelihood (skill leaves: the mean log-probability per token
each model gives the held-out seed's own response). Each row's verdict says whether tuning
changed it beyond chance: a paired sign test over its items at the 5 % level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from itertools import groupby
from typing import Any

from labdesk.evaluate.items import EvalItem
from labdesk.evaluate.scoring import is_right, mean_interval, sign_test, wilson

Lookup = Callable[[str, str, EvalItem], Any]
ROLES = ("base", "tuned")
ACCURACY = "closed-book accuracy"
GENERAL = "general accuracy"
LIKELIHOOD = "reference log-likelihood"
NOT_ASKED = "[not asked: the question does not fit the model's context]"
IMPROVED, REGRESSED, UNCLEAR = "improved", "regressed", "unclear"
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Score:
    value: float
    n: int
    low: float
    high: float

    def text(self, metric: str) -> str:
        if metric == LIKELIHOOD:
            return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}] (n={self.n})"
        return f"{self.value:.0%} [{self.low:.0%}, {self.high:.0%}] (n={self.n})"


@dataclass
class LeafResult:
    leaf: str
    kind: str
    metric: str
    base: Score | None
    tuned: Score | None
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def delta(self) -> float | None:
        if self.base is None or self.tuned is None:
            return None
        return self.tuned.value - self.base.value

    @property
    def verdict(self) -> str:
        """`improved` or `regressed` when more items got better than worse (or the reverse)
        than chance explains at 5 %; `unclear` otherwise, e.g. -1 point on 100 questions, or
        any change on a single reference."""
        gains = losses = 0
        for item in self.items:
            base, tuned = (_item_value(item[role], self.metric) for role in ROLES)
            if base is not None and tuned is not None:
                gains += tuned > base
                losses += tuned < base
        if sign_test(gains, losses) >= SIGNIFICANCE:
            return UNCLEAR
        return IMPROVED if gains > losses else REGRESSED

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta, "verdict": self.verdict}


@dataclass
class Report:
    run: str
    models: dict[str, str]
    leaves: list[LeafResult]
    forgetting: LeafResult | None
    examples: list[dict[str, Any]] = field(default_factory=list)
    """Held-out questions with the base and the tuned answer side by side."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "models": self.models,
            "leaves": [leaf.to_dict() for leaf in self.leaves],
            "forgetting": self.forgetting.to_dict() if self.forgetting else None,
            "examples": self.examples,
        }

    def rows(self) -> list[LeafResult]:
        return [*self.leaves, *([self.forgetting] if self.forgetting else [])]

    def markdown(self) -> str:
        lines = [
            f"# Evaluation of run `{self.run}`",
            "",
            *(f"- {role}: `{path}`" for role, path in self.models.items()),
            "",
            "Scores with their 95 % interval and number of questions; higher is better. The"
            " verdict is a paired sign test over the items at the 5 % level.",
            "",
            "| leaf | metric | base | tuned | change | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for row in self.rows():
            lines.append(
                f"| {row.leaf} | {row.metric} | {fmt(row.base, row.metric)} "
                f"| {fmt(row.tuned, row.metric)} | {fmt_delta(row.delta, row.metric)} "
                f"| {row.verdict} |"
            )
        if self.examples:
            lines += ["", "## Before and after", "", "| question | base | tuned |", "|---|---|---|"]
            for ex in self.examples:
                lines.append(
                    f"| {_cell(ex['question'])} | {mark(ex['base'])} | {mark(ex['tuned'])} |"
                )
        for row in self.rows():
            lines += ["", f"## {row.leaf} ({row.metric})"]
            for item in row.items:
                lines += ["", f"**Q:** {item['question']}"]
                if item.get("expect"):
                    lines.append(f"**States:** {item['expect']}")
                for role in ROLES:
                    lines.append(f"- **{role}:** {_describe(item[role], row.metric)}")
        return "\n".join(lines) + "\n"


def fmt(score: Score | None, metric: str) -> str:
    return "–" if score is None else score.text(metric)


def fmt_delta(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    return f"{value:+.2f} nats/token" if metric == LIKELIHOOD else f"{value * 100:+.0f} pts"


def cells(row: dict[str, Any]) -> tuple[str, str, str]:
    """Base, tuned and change of a report row in its saved (dict) form, as text."""
    metric = row["metric"]
    base, tuned = (None if row[r] is None else Score(**row[r]) for r in ROLES)
    return fmt(base, metric), fmt(tuned, metric), fmt_delta(row["delta"], metric)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def mark(answer: dict[str, Any]) -> str:
    return f"{'✓' if answer['right'] else '✗'} {_cell(answer['answer'] or '(no answer)')}"


def _item_value(result: dict[str, Any], metric: str) -> float | None:
    """One model's score on one item; None where it was not scored."""
    if metric == LIKELIHOOD:
        return result["likelihood"]
    return float(result["right"]) if _asked(result["answer"]) else None


def _asked(answer: str | None) -> bool:
    """Whether the model answered: not when the question did not fit its context."""
    return answer is not None and answer != NOT_ASKED


def _describe(result: dict[str, Any], metric: str) -> str:
    if metric == LIKELIHOOD:
        value = result.get("likelihood")
        return "not scored" if value is None else f"{value:.2f} nats/token"
    if result.get("answer") == NOT_ASKED:
        return "not scored: the question does not fit the model's context"
    verdict = "right" if result.get("right") else "wrong"
    return f"{verdict}: {_cell(result.get('answer') or '(no answer)')!r}"


def _expect_text(item: EvalItem) -> str:
    facts = [" / ".join(fact) for fact in item.expect]
    need = item.need or len(facts)
    return "; ".join(facts) + (f" (any {need})" if need < len(facts) else "")


def _accuracy(leaf: str, kind: str, metric: str, items: list[EvalItem], get: Lookup) -> LeafResult:
    rows: list[dict[str, Any]] = []
    right: dict[str, list[bool]] = {role: [] for role in ROLES}
    for item in items:
        row: dict[str, Any] = {"question": item.question, "expect": _expect_text(item)}
        for role in ROLES:
            answer = get("answer", role, item)
            asked = _asked(answer)
            correct = asked and is_right(answer, item.expect, item.need)
            row[role] = {"answer": answer, "right": correct}
            if asked:
                right[role].append(correct)
        rows.append(row)
    return LeafResult(leaf, kind, metric, _rate(right["base"]), _rate(right["tuned"]), rows)


def _rate(results: list[bool]) -> Score | None:
    if not results:
        return None
    k, n = sum(results), len(results)
    low, high = wilson(k, n)
    return Score(k / n, n, low, high)


def _likelihood(leaf: str, kind: str, items: list[EvalItem], get: Lookup) -> LeafResult:
    rows: list[dict[str, Any]] = []
    values: dict[str, list[float]] = {role: [] for role in ROLES}
    for item in items:
        row: dict[str, Any] = {"question": item.question, "reference": item.reference}
        for role in ROLES:
            value = get("reference", role, item)
            scored = isinstance(value, float | int)  # else not scored: too long for the model
            row[role] = {"likelihood": value if scored else None}
            if scored:
                values[role].append(float(value))
        rows.append(row)

    def score(role: str) -> Score | None:
        if not values[role]:
            return None
        low, high = mean_interval(values[role])
        return Score(sum(values[role]) / len(values[role]), len(values[role]), low, high)

    return LeafResult(leaf, kind, LIKELIHOOD, score("base"), score("tuned"), rows)


def _examples(rows: list[LeafResult], count: int) -> list[dict[str, Any]]:
    """`count` closed-book questions spread evenly over the knowledge leaves' items."""
    items = [
        item
        for row in rows
        if row.metric == ACCURACY
        for item in row.items
        if item["tuned"]["answer"] not in (None, "", NOT_ASKED)
    ]
    if not items or not count:
        return []
    step = max(1, len(items) // count)
    return [
        {"question": i["question"], "expect": i["expect"], "base": i["base"], "tuned": i["tuned"]}
        for i in items[::step][:count]
    ]


def build_report(
    run: str, items: list[EvalItem], get: Lookup, models: dict[str, str], examples: int = 6
) -> Report:
    leaves: list[LeafResult] = []
    forgetting = None
    ordered = sorted(items, key=lambda i: (i.kind == "general", i.leaf))
    for (leaf, kind), group in groupby(ordered, key=lambda i: (i.leaf, i.kind)):
        members = list(group)
        if kind == "knowledge":
            leaves.append(_accuracy(leaf, kind, ACCURACY, members, get))
        elif kind == "general":
            forgetting = _accuracy("general questions (forgetting)", kind, GENERAL, members, get)
        else:
            leaves.append(_likelihood(leaf, kind, members, get))
    return Report(run, models, leaves, forgetting, _examples(leaves, examples))
