"""One validation finding: what is wrong, where (file:line:col and YAML path), and who says so."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]
Source = Literal["upstream", "labdesk"]


@dataclass(frozen=True)
class Problem:
    """A finding on one taxonomy file.

    `source="upstream"` problems are the ones InstructLab's own checks report (they decide the
    verdict); `source="labdesk"` problems are our extra advice and are always warnings.
    `yaml_path` uses upstream's yq-style form (``.seed_examples[2].answer``, ``.`` for the root;
    empty when a problem has no node, e.g. an unreadable file). `code` names the check
    (``schema``, ``lint:<rule>``, ``yaml``, ``file-name``, ``empty``, ``words``, ...).
    """

    severity: Severity
    message: str
    file: str
    line: int = 1
    col: int = 1
    yaml_path: str = ""
    source: Source = "upstream"
    code: str = ""

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def __str__(self) -> str:
        path = f" [{self.yaml_path}]" if self.yaml_path else ""
        return f"{self.where}: {self.severity}{path} {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)
