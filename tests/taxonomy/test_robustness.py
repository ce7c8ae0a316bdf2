"""Hostile input: thousands of mutated real files, alias bombs, huge files.

Every case must end as reported problems (or a valid verdict) within bounded time and memory,
never as a traceback.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labdesk.taxonomy import Problem, validate_file, validate_text
from labdesk.taxonomy.safeyaml import MAX_FILE_BYTES, MAX_NODES

from .corpus import corpus_sources

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
SOURCES = corpus_sources(SHARED) if SHARED.is_dir() else []
# a spread of real files: every 25th of the corpus, skills and knowledge, all schema versions
SAMPLES = [
    next(p for p in folder.iterdir() if p.name != "ORIGIN").read_bytes() for folder in SOURCES[::25]
]
needs_corpus = pytest.mark.skipif(not SAMPLES, reason=f"real-world fixtures not found at {SHARED}")

MUTATIONS = (
    "delete_line",
    "duplicate_line",
    "indent",
    "dedent",
    "tab",
    "bad_bytes",
    "wrong_type",
    "truncate",
    "insert_char",
)


def mutate(data: bytes, ops: list[tuple[str, int, int]]) -> bytes:
    lines = data.split(b"\n")
    for op, where, extra in ops:
        i = where % max(len(lines), 1)
        line = lines[i] if lines else b""
        if op == "delete_line" and lines:
            del lines[i]  # a deleted key (or part of a value)
        elif op == "duplicate_line":
            lines.insert(i, line)  # duplicate keys
        elif op == "indent":
            lines[i : i + 1] = [b" " * (extra % 5 + 1) + line]
        elif op == "dedent":
            lines[i : i + 1] = [line.lstrip()]
        elif op == "tab":
            lines[i : i + 1] = [b"\t" + line]
        elif op == "bad_bytes":
            lines[i : i + 1] = [line[: extra % (len(line) + 1)] + b"\xff\xfe\x80" + line[1:]]
        elif op == "wrong_type" and b":" in line:
            key = line.split(b":", 1)[0]
            values = (b" [1, 2]", b" {a: b}", b" 42", b" null", b" true", b" - x")
            lines[i : i + 1] = [key + b":" + values[extra % len(values)]]
        elif op == "truncate":
            lines = lines[: max(i, 1)]
        elif op == "insert_char":
            chars = (b"&", b"*", b"!", b"|", b">", b"'", b'"', b"{", b"[", b"%", b"@", b"\x00")
            c = extra % (len(line) + 1)
            lines[i : i + 1] = [line[:c] + chars[extra % len(chars)] + line[c:]]
    return b"\n".join(lines)


def _bounded(call: Callable[[], list[Problem]], seconds: float = 5.0) -> list[Problem]:
    started = time.perf_counter()
    problems = call()
    assert time.perf_counter() - started < seconds
    return problems


@needs_corpus
@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    sample=st.sampled_from(SAMPLES),
    ops=st.lists(
        st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 10_000), st.integers(0, 10_000)),
        min_size=1,
        max_size=4,
    ),
    top=st.sampled_from(["compositional_skills", "knowledge", "foundational_skills"]),
)
def test_mutated_real_files_never_crash(
    sample: bytes,
    ops: list[tuple[str, int, int]],
    top: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data = mutate(sample, ops)
    root = tmp_path_factory.getbasetemp() / "mutants"
    file = root / top / "leaf" / "qna.yaml"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(data)
    problems = _bounded(lambda: validate_file(file, root=root))
    assert all(p.line >= 1 and p.col >= 1 and p.message for p in problems)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert any(p.code == "encoding" and p.severity == "error" for p in problems)
        return
    # the editor path (unsaved text) agrees with the file path on the verdict
    unsaved = _bounded(lambda: validate_text(text, f"{top}/leaf/qna.yaml"))
    assert _has_errors(unsaved) == _has_errors(problems)
    # our fast path trusts libyaml only when it accepts; it must then never accept what PyYAML's
    # pure parser (upstream's) refuses (the other way round we parse again in pure Python)
    if _accepts(text, yaml.CSafeLoader):
        assert _accepts(text, yaml.SafeLoader)


def _has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def _accepts(text: str, loader: type) -> bool:
    try:
        yaml.load(text.replace("\r\n", "\n").replace("\r", "\n"), Loader=loader)
    except yaml.YAMLError:
        return False
    except RecursionError:
        return False
    return True


BOMB = """version: 3
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
created_by: *i
"""


def test_billion_laughs_is_refused_in_bounded_time_and_memory() -> None:
    tracemalloc.start()
    try:
        problems = _bounded(
            lambda: validate_text(BOMB, "compositional_skills/x/qna.yaml"), seconds=2
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (problem,) = problems
    assert problem.code == "yaml-limit" and f"{MAX_NODES:,}" in problem.message
    assert problem.line > 1  # placed at the node that blows up
    assert peak < 50 * 1024 * 1024


def test_recursive_alias_and_deep_nesting_are_reported() -> None:
    (recursive,) = validate_text("version: 3\nx: &x [1, *x]\n", "compositional_skills/x/qna.yaml")
    assert recursive.code == "yaml-limit" and "recursive" in recursive.message
    deep = "version: 3\nx: " + "[" * 5000 + "]" * 5000 + "\n"
    (nested,) = _bounded(lambda: validate_text(deep, "compositional_skills/x/qna.yaml"))
    assert nested.code == "yaml" and nested.severity == "error"


def test_huge_file_is_refused_before_reading_it_all(tmp_path: Path) -> None:
    file = tmp_path / "compositional_skills" / "huge" / "qna.yaml"
    file.parent.mkdir(parents=True)
    line = b"# " + b"x" * 1000 + b"\n"
    with file.open("wb") as handle:
        handle.write(b"version: 3\n")
        for _ in range(50 * 1024):  # 50 MB
            handle.write(line)
    assert file.stat().st_size > MAX_FILE_BYTES
    tracemalloc.start()
    try:
        (problem,) = _bounded(lambda: validate_file(file, root=tmp_path), seconds=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problem.code == "unreadable" and "larger than" in problem.message
    assert peak < 3 * MAX_FILE_BYTES


@pytest.mark.parametrize(
    ("text", "code", "line"),
    [
        ("", "empty", 1),
        ("- a\n- b\n", "not-mapping", 1),
        ("version: 3\n\tcreated_by: x\n", "yaml", 2),
        ("version: 3\nkey: 'open\n", "yaml", 3),
        ("version: 3\nx: \x07\n", "yaml", 2),
        ("version: .inf\n", "version", 1),
        ("version: 1\ncreated_by: [a\n", "yaml", 3),
    ],
)
def test_classic_breakage_is_an_error_with_a_position(text: str, code: str, line: int) -> None:
    problems = validate_text(text, "compositional_skills/x/qna.yaml")
    assert problems[0].code == code, problems
    assert problems[0].line == line, problems
