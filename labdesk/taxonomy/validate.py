"""Validate one qna.yaml exactly as upstream's `TaxonomyParser` does, plus our own advice.

The upstream verdict comes from the same steps in the same order as
`instructlab.schema.taxonomy.TaxonomyParser.parse` configured like `ilab taxonomy diff`
(version taken from the file, yamllint strict): file name, YAML, empty file, top-level mapping,
yamllint for version > 1, then the JSON schema of that version. Where upstream crashes (broken
YAML, bad bytes) or reports line 1, we report the problem with its real position instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from labdesk.taxonomy import advice
from labdesk.taxonomy.lint import lint
from labdesk.taxonomy.problems import Problem, Severity
from labdesk.taxonomy.safeyaml import MAX_FILE_BYTES, YamlLimitError, parse, path_at, position
from labdesk.taxonomy.schema import SCHEMA_NAMES, load_schema
from labdesk.taxonomy.wording import schema_message
from labdesk.yamlpath import format_path

LEAF_FILE = "qna.yaml"


@dataclass
class Checked:
    """What checking one file found: its problems and, when readable, its parsed content."""

    file: str
    rel_path: str
    problems: list[Problem] = field(default_factory=list)
    data: Mapping[str, Any] | None = None
    node: yaml.Node | None = None
    """The composed YAML tree, to place problems at their real line."""
    version: object = 0
    schema_name: str = ""

    def add(
        self,
        message: str,
        *,
        severity: Severity = "error",
        line: int = 1,
        col: int = 1,
        yaml_path: str = "",
        source: str = "upstream",
        code: str,
    ) -> None:
        self.problems.append(
            Problem(severity, message, self.file, line, col, yaml_path, source, code)  # type: ignore[arg-type]
        )

    @property
    def valid(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)


def schema_name_for(rel_path: str, data: Mapping[str, Any]) -> str:
    """Upstream picks the schema from the last taxonomy folder in the path, else by content."""
    for part in reversed(PurePosixPath(rel_path).parts):
        if part in SCHEMA_NAMES:
            return part
    return "knowledge" if "document" in data else "compositional_skills"


def check_text(text: str, rel_path: str, file: str | None = None) -> Checked:
    """Upstream's checks on `text` (already decoded, newlines normalised) at taxonomy path
    `rel_path`, then our advice that needs no file system."""
    checked = Checked(file or rel_path, rel_path)
    name = PurePosixPath(rel_path).name
    if name != LEAF_FILE:
        checked.add(
            f'Taxonomy file must be named "{LEAF_FILE}"; "{name}" is not a valid name',
            code="file-name",
        )
        return checked
    try:
        parsed = parse(text)
    except YamlLimitError as exc:
        checked.add(str(exc), line=exc.line, col=exc.col, source="labdesk", code="yaml-limit")
        return checked
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "unreadable YAML"
        checked.add(f"invalid YAML: {what}", line=where[0], col=where[1], code="yaml")
        return checked
    except yaml.YAMLError as exc:  # e.g. a ReaderError for a control character
        line, col = _reader_position(text, exc)
        checked.add(f"invalid YAML: {exc}".splitlines()[0], line=line, col=col, code="yaml")
        return checked
    except RecursionError:
        checked.add("invalid YAML: nested too deeply", code="yaml")
        return checked

    data = parsed.data
    if not data:
        checked.add("The file is empty", severity="warning", code="empty")
        return checked
    if not isinstance(data, Mapping):
        checked.add(
            "The file is not valid. The top-level element is not an object with key-value pairs.",
            code="not-mapping",
        )
        return checked
    checked.data = data
    checked.node = parsed.node
    try:
        checked.version = version = _declared_version(data)
    except OverflowError:  # upstream crashes on e.g. `version: .inf`
        line, col = position(parsed.node, ["version"])
        checked.add(
            "version is not a whole number",
            line=line,
            col=col,
            yaml_path=".version",
            code="version",
        )
        return checked
    checked.schema_name = schema_name_for(rel_path, data)

    if version > 1:  # type: ignore[operator]  # upstream lints only version 2 and later
        _lint(text, checked)
    _schema_validate(checked)
    checked.problems.extend(
        advice.content_advice(data, checked.schema_name, parsed.node, checked.file)
    )
    return checked


def _declared_version(data: Mapping[str, Any]) -> object:
    """The `version` value coerced exactly as upstream does (a bool stays a bool)."""
    declared = data.get("version", 1)
    if isinstance(declared, int):
        return declared
    try:
        return int(declared)
    except (ValueError, TypeError):
        return 1


def _lint(text: str, checked: Checked) -> None:
    try:
        for finding in lint(text):
            parts = path_at(checked.node, finding.line, finding.col) if checked.node else []
            checked.add(
                finding.message,
                line=finding.line,
                col=finding.col,
                yaml_path="." + format_path(parts),
                code=f"lint:{finding.rule or 'syntax'}",
            )
    except Exception as exc:  # upstream's subprocess would print a traceback and report nothing
        checked.add(
            f"yamllint could not check this file ({type(exc).__name__}: {exc})",
            severity="warning",
            source="labdesk",
            code="lint-crash",
        )


def _schema_validate(checked: Checked) -> None:
    from referencing.exceptions import NoSuchResource

    assert checked.data is not None
    try:
        schema = load_schema(checked.version, checked.schema_name)
    except NoSuchResource as exc:
        checked.add(
            f"Cannot load schema file {exc.ref}. Is version {checked.version!r} one of 1, 2, 3?",
            code="schema-version",
        )
        return
    if schema.validator is None:
        checked.add(schema.deprecated or "deprecated schema version", code="deprecated")
        return
    try:
        errors = list(schema.validator.iter_errors(checked.data))
    except Exception as exc:  # e.g. non-string keys upset a regex check; upstream crashes here
        checked.add(f"cannot validate this content: {exc}", code="schema")
        return
    for error in errors:
        yaml_path = error.json_path[1:] or "."
        line, col = position(checked.node, list(error.absolute_path))
        checked.add(schema_message(error), line=line, col=col, yaml_path=yaml_path, code="schema")


def _reader_position(text: str, exc: yaml.YAMLError) -> tuple[int, int]:
    position = getattr(exc, "position", None)
    if not isinstance(position, int):
        return 1, 1
    before = text[:position]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1


def read_leaf_text(path: Path) -> str:
    """The file's text as upstream reads it (UTF-8, universal newlines), bounded in size.

    Raises `UnicodeDecodeError` or `OSError`; `ValueError` for a file over the size limit.
    """
    with path.open("rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(f"file larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    return raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def taxonomy_rel_path(path: Path, root: Path | None) -> str:
    """The file's path inside its taxonomy: relative to `root`, or (like upstream) from the last
    `knowledge`/`compositional_skills` folder in its absolute path."""
    resolved = path.resolve()
    if root is not None:
        try:
            return resolved.relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    parts = resolved.parts
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] in SCHEMA_NAMES:
            return PurePosixPath(*parts[index:]).as_posix()
    return resolved.as_posix()


def check_file(path: Path, *, root: Path | None = None, file: str | None = None) -> Checked:
    """Upstream's checks on a file on disk plus all our advice (including file-system advice)."""
    rel_path = taxonomy_rel_path(path, root)
    shown = file or str(path)
    if not path.is_file():
        checked = Checked(shown, rel_path)
        checked.add(f'The file "{path}" does not exist or is not a file', code="missing")
        return checked
    if path.name != LEAF_FILE:  # the name rule comes before reading, as upstream
        return check_text("", rel_path, shown)
    try:
        text = read_leaf_text(path)
    except UnicodeDecodeError as exc:
        checked = Checked(shown, rel_path)
        line, col = _byte_position(path, exc.start)
        checked.add(
            f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} cannot be decoded; save the file as UTF-8",
            line=line,
            col=col,
            code="encoding",
        )
        return checked
    except (OSError, ValueError) as exc:
        checked = Checked(shown, rel_path)
        checked.add(f"cannot read the file: {exc}", code="unreadable")
        return checked
    checked = check_text(text, rel_path, shown)
    if checked.data is not None:
        checked.problems.extend(advice.file_advice(path, checked.data, checked.node, shown))
    return checked


def _byte_position(path: Path, offset: int) -> tuple[int, int]:
    with path.open("rb") as handle:
        before = handle.read(offset)
    return before.count(b"\n") + 1, offset - (before.rfind(b"\n") + 1) + 1
