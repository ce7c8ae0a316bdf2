"""JSON schema and small regexes → GBNF grammars for llama.cpp's grammar sampler.

Our own converter for the subset labdesk's pipelines use, because llama.cpp's admits raw
control characters inside strings (the result fails `json.loads`), ignores integer bounds, and
leaves string and array lengths unbounded (a random model may never close a string). Here every
accepted output parses and validates, and every string and array has a length cap so a
sequence always terminates.

Supported schema keywords: type object (properties, required), string (minLength, maxLength),
integer (minimum, maximum), number, boolean, null, array (items, minItems, maxItems), enum, const.
Anything else is a ModelError naming the keyword: silently ignoring a constraint would let
invalid output through.
"""

from __future__ import annotations

import json
from typing import Any

from labdesk.errors import ModelError

DEFAULT_MAX_STRING = 500
DEFAULT_MAX_ITEMS = 32
# Integer ranges up to this many values are spelled out as alternatives.
MAX_ENUMERATED_INTEGERS = 2000

_IGNORED_KEYWORDS = {
    "title",
    "description",
    "$schema",
    "default",
    "examples",
    "additionalProperties",
}
_KNOWN = {
    "object": {"type", "properties", "required"},
    "string": {"type", "minLength", "maxLength"},
    "integer": {"type", "minimum", "maximum"},
    "number": {"type"},
    "boolean": {"type"},
    "null": {"type"},
    "array": {"type", "items", "minItems", "maxItems"},
}

_COMMON_RULES = {
    "ws": '" "?',
    "char": r'[^"\\\x00-\x1F\x7F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "uint": '"0" | [1-9] [0-9]{0,17}',
}


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    return '"' + "".join(_escape(c, in_class=False) for c in text) + '"'


def _escape(c: str, *, in_class: bool) -> str:
    if (c.isalnum() and c.isascii()) or c == " ":
        return c
    if not in_class and c not in '"\\' and c.isprintable() and c.isascii():
        return c
    code = ord(c)
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


class _Builder:
    def __init__(self) -> None:
        self.rules: dict[str, str] = {}

    def add(self, name: str, body: str) -> str:
        """Define a rule (reusing an identical one) and return its name."""
        for existing, existing_body in self.rules.items():
            if existing_body == body:
                return existing
        unique, n = name, 1
        while unique in self.rules or unique in _COMMON_RULES:
            n += 1
            unique = f"{name}{n}"
        self.rules[unique] = body
        return unique

    def text(self, root: str) -> str:
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        lines += [f"{name} ::= {body}" for name, body in _COMMON_RULES.items()]
        return "\n".join(lines) + "\n"


def schema_to_gbnf(schema: dict[str, Any]) -> str:
    """A grammar whose every complete output is compact JSON that satisfies `schema`."""
    builder = _Builder()
    root = _value(builder, schema, "value", "$")
    return builder.text(root)


def _value(b: _Builder, schema: dict[str, Any], name: str, where: str) -> str:
    if not isinstance(schema, dict):
        raise ModelError(f"schema at {where} must be an object", where=where)
    if "const" in schema:
        return b.add(name, gbnf_literal(json.dumps(schema["const"], ensure_ascii=False)))
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not values:
            raise ModelError("enum must be a non-empty list", where=where)
        alts = " | ".join(gbnf_literal(json.dumps(v, ensure_ascii=False)) for v in values)
        return b.add(name, alts)
    kind = schema.get("type")
    if not isinstance(kind, str) or kind not in _KNOWN:
        raise ModelError(
            f"unsupported schema type {kind!r} at {where}",
            where=where,
            hint=f"use one of: {', '.join(_KNOWN)} (or enum/const)",
        )
    unknown = set(schema) - _KNOWN[kind] - _IGNORED_KEYWORDS
    if unknown:
        raise ModelError(
            f"schema keyword(s) {sorted(unknown)} at {where} are not supported for {kind}",
            where=where,
            hint="constrained generation supports a JSON-schema subset; see labdesk.models.grammar",
        )
    if kind == "object":
        return _object(b, schema, name, where)
    if kind == "array":
        return _array(b, schema, name, where)
    if kind == "string":
        low = int(schema.get("minLength", 0))
        high = int(schema.get("maxLength", max(DEFAULT_MAX_STRING, low)))
        return b.add(name, f'"\\"" char{{{low},{high}}} "\\""')
    if kind == "integer":
        return b.add(name, _integer(schema, where))
    if kind == "number":
        return b.add(name, '"-"? uint ("." [0-9]{1,12})?')
    if kind == "boolean":
        return b.add(name, '"true" | "false"')
    return b.add(name, '"null"')


def _object(b: _Builder, schema: dict[str, Any], name: str, where: str) -> str:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    missing = required - set(properties)
    if missing:
        raise ModelError(f"required {sorted(missing)} not in properties", where=where)
    # Every declared property is written, in order: optional ones too, which always validates
    # and keeps the grammar free of the combinatorics of optional members.
    parts = []
    for key, sub in properties.items():
        rule = _value(b, sub, _rule_name(key), f"{where}.{key}")
        parts.append(f'{gbnf_literal(json.dumps(key, ensure_ascii=False))} ":" ws {rule}')
    if not parts:
        return b.add(name, '"{" "}"')
    body = ' "," ws '.join(parts)
    return b.add(name, f'"{{" ws {body} ws "}}"')


def _array(b: _Builder, schema: dict[str, Any], name: str, where: str) -> str:
    item = _value(b, schema.get("items", {"type": "string"}), f"{name}-item", f"{where}[]")
    low = int(schema.get("minItems", 0))
    high = int(schema.get("maxItems", max(DEFAULT_MAX_ITEMS, low)))
    if high < low:
        raise ModelError("maxItems is smaller than minItems", where=where)
    if high == 0:
        return b.add(name, '"[" "]"')
    more = f'("," ws {item}){{{max(low - 1, 0)},{high - 1}}}'
    body = f"{item} {more}"
    if low == 0:
        body = f"({body})?"
    return b.add(name, f'"[" ws {body} ws "]"')


def _integer(schema: dict[str, Any], where: str) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        low, high = int(low), int(high)
        if high < low:
            raise ModelError("maximum is smaller than minimum", where=where)
        if high - low + 1 > MAX_ENUMERATED_INTEGERS:
            raise ModelError(
                f"integer range {low}..{high} is too wide for constrained output",
                where=where,
                hint=f"keep ranges within {MAX_ENUMERATED_INTEGERS} values",
            )
        # Longest spellings first keeps the alternatives readable; the sampler handles
        # overlapping prefixes ("1" vs "10") either way.
        values = sorted(range(low, high + 1), key=lambda v: (-len(str(v)), v))
        return " | ".join(f'"{v}"' for v in values)
    if high is None and low is not None and int(low) in (0, 1):
        return "uint" if int(low) == 0 else "[1-9] [0-9]{0,17}"
    if low is None and high is None:
        return '"-"? uint'
    raise ModelError(
        "integer bounds other than a closed range or minimum 0/1 are not supported",
        where=where,
    )


def _rule_name(key: str) -> str:
    cleaned = "".join(c if c.isalnum() and c.isascii() else "-" for c in key).strip("-").lower()
    return cleaned or "prop"


# -- patterns ---------------------------------------------------------------------------------

_CLASS_ESCAPES = {"d": "0-9", "w": "a-zA-Z0-9_", "s": " \\t\\n\\r"}


def pattern_to_gbnf(pattern: str) -> str:
    """A grammar matching exactly the strings of `pattern`, a small regex subset.

    Supported: literals, escapes (\\d \\w \\s and escaped punctuation), `.`, classes `[a-z]`
    / `[^…]`, groups `( )`, alternation `|`, quantifiers `* + ? {m} {m,n}`, and ^ $ at the ends.
    """
    body = pattern.removeprefix("^")
    if body.endswith("$") and not body.endswith("\\$"):
        body = body[:-1]
    parser = _PatternParser(body, pattern)
    expr = parser.alternation()
    if parser.pos != len(body):
        parser.fail("unbalanced ')'")
    return f"root ::= {expr}\n"


class _PatternParser:
    def __init__(self, text: str, original: str) -> None:
        self.text = text
        self.original = original
        self.pos = 0

    def fail(self, why: str) -> None:
        raise ModelError(
            f"pattern not supported: {why} (at character {self.pos + 1})",
            where=self.original,
            hint="patterns support literals, classes, groups, | and * + ? {m,n}",
        )

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def alternation(self) -> str:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.sequence())
        return " | ".join(b or '""' for b in branches)

    def sequence(self) -> str:
        items = []
        while self.peek() not in ("", "|", ")"):
            atom = self.atom()
            items.append(atom + self.quantifier())
        return " ".join(items)

    def atom(self) -> str:
        c = self.peek()
        self.pos += 1
        if c == "(":
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            inner = self.alternation()
            if self.peek() != ")":
                self.fail("missing ')'")
            self.pos += 1
            return f"({inner})"
        if c == "[":
            return self.char_class()
        if c == ".":
            return "[^\\n]"
        if c == "\\":
            escaped = self.peek()
            self.pos += 1
            if escaped in _CLASS_ESCAPES:
                return f"[{_CLASS_ESCAPES[escaped]}]"
            if escaped.isalnum() or not escaped:
                self.fail(f"unknown escape '\\{escaped}'")
            return gbnf_literal(escaped)
        if c in "*+?{":
            self.fail(f"nothing to repeat before '{c}'")
        return gbnf_literal(c)

    def char_class(self) -> str:
        out = "["
        if self.peek() == "^":
            out += "^"
            self.pos += 1
        first = True
        while True:
            c = self.peek()
            if not c:
                self.fail("missing ']'")
            if c == "]" and not first:
                self.pos += 1
                return out + "]"
            first = False
            self.pos += 1
            if c == "\\":
                escaped = self.peek()
                self.pos += 1
                if escaped in _CLASS_ESCAPES:
                    out += _CLASS_ESCAPES[escaped]
                    continue
                if escaped.isalnum():
                    self.fail(f"unknown escape '\\{escaped}'")
                c = escaped
            if c == "-" and out[-1:] not in ("[", "^") and self.peek() not in ("]", ""):
                out += "-"
                continue
            out += _escape(c, in_class=True)

    def quantifier(self) -> str:
        c = self.peek()
        if c in ("*", "+", "?"):
            self.pos += 1
            return c
        if c != "{":
            return ""
        end = self.text.find("}", self.pos)
        spec = self.text[self.pos + 1 : end] if end > 0 else ""
        low, _, high = spec.partition(",")
        if not low.isdigit() or (high and not high.isdigit()):
            self.fail("bad {m,n} quantifier")
        self.pos = end + 1
        if "," not in spec:
            return f"{{{low}}}"
        return f"{{{low},{high}}}"
