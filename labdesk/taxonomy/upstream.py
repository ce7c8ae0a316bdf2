"""Run InstructLab's own parser on a file, set up as `ilab taxonomy diff` sets it up.

This is the reference our validator is measured against (conformance tests, the benchmark, and
`labdesk taxonomy check --upstream`). Upstream runs `yamllint` as a subprocess found on PATH and
silently skips linting when it is missing, so `yamllint_on_path()` must hold for a real verdict.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

_LOGGER = "instructlab.schema.taxonomy"
_PREFIX_WITH_PATH = "%s:%s:%s [%s] "


@dataclass(frozen=True)
class UpstreamVerdict:
    errors: int
    warnings: int
    error_paths: frozenset[str] = field(default_factory=frozenset)
    """YAML paths of the errors that name one (schema errors)."""
    messages: tuple[str, ...] = ()
    crashed: str | None = None
    """The exception upstream raised instead of a verdict (broken YAML, bad bytes, ...)."""

    @property
    def valid(self) -> bool:
        return self.crashed is None and self.errors == 0


def yamllint_on_path() -> bool:
    return shutil.which("yamllint") is not None


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def upstream_check(path: Path) -> UpstreamVerdict:
    """Upstream's verdict on one file (`TaxonomyParser(schema_version=0, strict yamllint)`)."""
    from instructlab.schema.taxonomy import TaxonomyMessageFormat, TaxonomyParser

    parser = TaxonomyParser(
        schema_version=0,  # the version each file declares
        message_format=TaxonomyMessageFormat.LOGGING,
        yamllint_strict=True,  # lint warnings are errors, as in ilab
    )
    # Upstream asks `yq` (mikefarah's) for schema errors' lines; other tools named yq fail
    # noisily. Lines are not part of the verdict, so the reference runs without it (line 1).
    parser.yq_available = False
    logger = logging.getLogger(_LOGGER)
    collect = _Collect()
    logger.addHandler(collect)
    try:
        taxonomy = parser.parse(path)
    except Exception as exc:  # upstream raises TaxonomyReadingException on unreadable files
        cause = exc.__cause__ or exc
        return UpstreamVerdict(1, 0, crashed=f"{type(cause).__name__}: {cause}")
    finally:
        logger.removeHandler(collect)
    paths = frozenset(
        str(record.args[3])
        for record in collect.records
        if record.levelno >= logging.ERROR
        and isinstance(record.msg, str)
        and record.msg.startswith(_PREFIX_WITH_PATH)
        and isinstance(record.args, tuple)
    )
    return UpstreamVerdict(
        taxonomy.errors,
        taxonomy.warnings,
        paths,
        tuple(_message(record) for record in collect.records),
    )


def _message(record: logging.LogRecord) -> str:
    """Upstream splices its message into the format string, so a '%' in it breaks formatting."""
    try:
        return record.getMessage()
    except (TypeError, ValueError):
        return f"{record.msg} {record.args}"
