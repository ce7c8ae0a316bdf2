"""yamllint, in-process, with the configuration upstream's taxonomy checks use."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass

UPSTREAM_CONFIG = "{extends: relaxed, rules: {line-length: disable}}"
"""instructlab-schema's default yamllint configuration (relaxed, no line-length)."""

_DISABLE_FILE = re.compile(r"^#\s*yamllint disable-file\s*$")


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
    """Lint `text` as upstream does (it pipes the text as UTF-8 bytes to `yamllint -`).

    Only called on text that already parsed as YAML, so yamllint's own syntax pass (a second full
    pure-Python parse, a third of its time) could never report anything: we run its cosmetic
    rules alone, after the same decoding (which drops a BOM) and `disable-file` check it does.
    Upstream runs in strict mode, so every finding, warning level or not, is an error.
    """
    from yamllint import decoder, linter, parser

    buffer = decoder.auto_decode(text.encode("utf-8"))
    if _DISABLE_FILE.match(next(parser.line_generator(buffer)).content):
        return
    for problem in linter.get_cosmetic_problems(buffer, _config(), None):
        yield LintFinding(problem.line, problem.column, problem.message, problem.rule)
