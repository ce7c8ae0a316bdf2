"""Constrained output: every answer of a random-weight model parses and satisfies its schema."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from labdesk.errors import ModelError
from labdesk.models.grammar import pattern_to_gbnf, schema_to_gbnf
from labdesk.models.types import GenRequest

from .conftest import load

# The shapes the generation pipeline asks for: free strings (where a random model would emit
# raw control characters), bounded integer scores, enums, booleans and short lists.
SCHEMA = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "minLength": 1, "maxLength": 60},
        "score": {"type": "integer", "minimum": 1, "maximum": 3},
        "rating": {"type": "integer", "minimum": -5, "maximum": 12},
        "verdict": {"enum": ["yes", "no", "unsure"]},
        "grounded": {"type": "boolean"},
        "facts": {
            "type": "array",
            "items": {"type": "string", "maxLength": 12},
            "minItems": 1,
            "maxItems": 3,
        },
        "count": {"type": "integer", "minimum": 0},
    },
    "required": ["question", "score", "rating", "verdict", "grounded", "facts", "count"],
}


def test_200_random_model_answers_all_parse_and_validate(random_gguf: Path) -> None:
    engine = load(random_gguf, parallel=8)
    requests = [
        GenRequest("Write JSON:", max_tokens=400, temperature=1.5, seed=i, schema=SCHEMA)
        for i in range(200)
    ]
    results = engine.generate(requests)
    assert all(r.finish_reason == "stop" for r in results)
    for result in results:
        value = json.loads(result.text)  # strict: a raw control character would fail here
        jsonschema.validate(value, SCHEMA)
        assert result.value == value
    scores = {r.value["score"] for r in results}
    assert scores == {1, 2, 3}  # the whole range is reachable, nothing outside it
    assert len({r.value["question"] for r in results}) > 150


def test_a_cut_json_answer_is_length_not_a_crash(random_gguf: Path) -> None:
    engine = load(random_gguf)
    result = engine.generate([GenRequest("x", max_tokens=5, schema=SCHEMA, seed=1)])[0]
    assert result.finish_reason == "length"
    assert result.value is None
    assert result.text.startswith("{")


def test_pattern_constrains_free_text(stories_gguf: Path) -> None:
    pattern = r"^[A-Z][a-z]{2,8} (is|was) \d{1,3}\.$"
    engine = load(stories_gguf)
    requests = [GenRequest("Once", 30, temperature=1.0, seed=i, pattern=pattern) for i in range(12)]
    for result in engine.generate(requests):
        assert result.finish_reason == "stop"
        assert re.fullmatch(pattern.strip("^$"), result.text), result.text


def test_grammar_text_for_small_schemas() -> None:
    grammar = schema_to_gbnf({"type": "integer", "minimum": 1, "maximum": 3})
    assert 'root ::= value\nvalue ::= "1" | "2" | "3"' in grammar
    assert r"\x00-\x1F" in schema_to_gbnf({"type": "string", "maxLength": 5})
    assert 'value ::= "\\"" char{0,5} "\\""' in schema_to_gbnf({"type": "string", "maxLength": 5})
    assert pattern_to_gbnf("a[^0-9-]+b?") == 'root ::= "a" [^0-9\\x2D]+ "b"?\n'


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "string", "pattern": "a+"}, "pattern"),
        ({"type": "integer", "minimum": 0, "maximum": 10**9}, "too wide"),
        ({"type": "object", "properties": {}, "required": ["x"]}, "required"),
        ({"type": "thing"}, "unsupported schema type"),
        ({"anyOf": [{"type": "string"}]}, "unsupported schema type"),
    ],
)
def test_unsupported_schemas_are_clear_errors(schema: dict[str, object], words: str) -> None:
    with pytest.raises(ModelError, match=words):
        schema_to_gbnf(schema)


def test_bad_patterns_are_clear_errors() -> None:
    for pattern in ("(ab", "a)", "*a", "[ab", r"\q"):
        with pytest.raises(ModelError, match="pattern not supported"):
            pattern_to_gbnf(pattern)


def test_a_value_completed_exactly_at_the_cap_is_kept(random_gguf: Path) -> None:
    engine = load(random_gguf)
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    free = engine.generate([GenRequest("x", 50, schema=schema)])[0]
    exact = engine.generate([GenRequest("x", free.tokens, schema=schema)])[0]
    assert (exact.finish_reason, exact.value, exact.text) == ("stop", free.value, free.text)
    short = engine.generate([GenRequest("x", free.tokens - 1, schema=schema)])[0]
    assert (short.finish_reason, short.value) == ("length", None)


def test_a_bad_schema_fails_before_decoding(stories_gguf: Path) -> None:
    engine = load(stories_gguf)
    requests = [GenRequest("Once", 5), GenRequest("Once", 5, schema={"type": "thing"})]
    with pytest.raises(ModelError, match="unsupported schema type"):
        engine.generate(requests)
    assert engine.generate(requests[:1])[0].tokens == 5  # the engine is fine afterwards
