"""What generation produced, per leaf and per run, and why a leaf fell short."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

LeafStatus = Literal["generated", "resumed", "unchanged", "preview"]
_EXAMPLES_PER_STEP = 2


@dataclass
class LeafReport:
    leaf: str
    kind: str
    status: LeafStatus
    target: int
    accepted: int = 0
    """Every accepted sample (Q&A plus knowledge augmentations)."""
    accepted_qa: int = 0
    """Accepted Q&A samples: what `samples_per_leaf` counts."""
    rejected: int = 0
    rejected_by_step: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    """A few rejection reasons per step, with the sample they were about."""
    rounds: int = 0
    teacher_tokens: int = 0
    judge_tokens: int = 0
    prompt_tokens: int = 0
    seconds: float = 0.0
    held_out: int = 0
    note: str = ""
    """Why the target was not reached (empty when it was)."""
    samples: list[dict[str, Any]] = field(default_factory=list)
    """Previews only: each candidate with what every step wrote or said."""

    @property
    def generated(self) -> int:
        return self.accepted + self.rejected

    @property
    def reached(self) -> bool:
        return self.accepted_qa >= self.target

    def count(self, accepted: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> None:
        """Fill the sample counts from the leaf's files (what is on disk is the truth)."""
        self.accepted = len(accepted)
        self.accepted_qa = sum(1 for r in accepted if r["metadata"]["type"] == "qa")
        self.rejected = len(rejected)
        steps = Counter(r["metadata"]["step"] for r in rejected)
        self.rejected_by_step = dict(steps.most_common())
        self.examples = {}
        for record in rejected:
            meta = record["metadata"]
            shown = self.examples.setdefault(meta["step"], [])
            if len(shown) < _EXAMPLES_PER_STEP:
                about = record["messages"][1]["content"] or meta.get("context") or ""
                shown.append(f"{_clip(meta['reason'], 160)} — on: {_clip(about, 80)!r}")

    def explain(self) -> str:
        """Which steps dropped how many, with examples: never an unexplained short leaf."""
        if not self.rejected_by_step:
            return "no candidate was generated" if not self.generated else ""
        parts = []
        for step, count in self.rejected_by_step.items():
            example = self.examples.get(step, [""])[0]
            parts.append(f"{step} rejected {count}" + (f" (e.g. {example})" if example else ""))
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["generated"] = self.generated
        data["reached"] = self.reached
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LeafReport:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class GenerationReport:
    leaves: list[LeafReport]
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return sum(leaf.accepted for leaf in self.leaves)

    @property
    def rejected(self) -> int:
        return sum(leaf.rejected for leaf in self.leaves)

    @property
    def teacher_tokens(self) -> int:
        return sum(leaf.teacher_tokens + leaf.judge_tokens for leaf in self.leaves)

    @property
    def short(self) -> list[LeafReport]:
        """Leaves that did not reach their target."""
        return [leaf for leaf in self.leaves if not leaf.reached]

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 3),
            "accepted": self.accepted,
            "rejected": self.rejected,
            "leaves": [leaf.to_json() for leaf in self.leaves],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationReport:
        return cls([LeafReport.from_json(x) for x in data["leaves"]], data.get("seconds", 0.0))


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
