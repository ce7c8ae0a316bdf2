"""yamllint, in-process, with the configuration upstream's taxonomy checks use."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

UPSTREAM_CONFIG = "{extends: relaxed, rules: {line-length: disable}}"
"""instructlab-schema's default yamllint configuration (relaxed, no line-length)."""


@dataclass(frozen=True)
class LintFinding:
    line: int
    col: int
    message: str
    rule: str | None


@functools.cache
def _config() -> object:
    from yamllint.config import YamlLintConfig

    return YamlLintConfig(content=UPSTREAM_CONFIG)


def lint(text: str) -> Iterator[LintFinding]:
    """Lint `text` as upstream does: it pipes the text as UTF-8 bytes to `yamllint -`.

    Linting the bytes (not the str) keeps yamllint's own decoding, e.g. it drops a leading BOM.
    Upstream runs in strict mode, so every finding, warning level or not, is an error.
    """
    from yamllint import linter

    for problem in linter.run(text.encode("utf-8"), _config()):
        yield LintFinding(problem.line, problem.column, problem.message, problem.rule)
