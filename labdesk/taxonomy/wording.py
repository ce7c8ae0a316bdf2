"""Upstream's schema errors said in plain words: which field, what it has, what it needs.

JSON Schema reports ``[{'question': '', ...}, ...] has non-unique elements`` or ``Value must have
at least 5 items``; a person needs ``seeds 1 and 2 are the same`` and ``seed_examples: 4 of at
least 5``. Only the words change: the error, its place and so upstream's verdict stay the same.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from jsonschema.exceptions import ValidationError

PLURALS = {"seed_examples": "seeds", "questions_and_answers": "Q&A pairs", "patterns": "patterns"}
"""What the items of a list are called when two of them are the same."""
TYPE_WORDS = {
    "string": "text",
    "array": "a list",
    "object": "a mapping of fields",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}
UNEXPECTED = re.compile(r"\((.*) (?:was|were) unexpected\)")


def schema_message(error: ValidationError) -> str:
    """One schema error in words (upstream's own text when it is already plain)."""
    name = _name(list(error.absolute_path))
    value, need = error.instance, error.validator_value
    match error.validator:
        case "required":
            missing = re.match(r"'([^']+)' is a required property", error.message)
            return f"{missing.group(1)} is missing" if missing else error.message
        case "minItems" if isinstance(value, list):
            return f"{name}: {len(value)} of at least {need}"
        case "maxItems" if isinstance(value, list):
            return f"{name}: {len(value)} of at most {need}"
        case "uniqueItems" if isinstance(value, list):
            return same_items(name, value)
        case "minLength" if isinstance(value, str):
            if not value.strip() or need == 1:
                return f"{name} is empty"
            return f"{name}: {len(value)} characters of at least {need}"
        case "maxLength" if isinstance(value, str):
            return f"{name}: {len(value)} characters of at most {need}"
        case "type" if isinstance(need, str):
            return f"{name} should be {TYPE_WORDS.get(need, need)}, not {_kind(value)}"
        case "const":
            return f"{name} must be {json.dumps(need)}, not {json.dumps(value, default=str)}"
        case "unevaluatedProperties" | "additionalProperties":
            return _unknown_fields(name, error)
    return error.message[-200:]


def same_items(name: str, items: list[Any]) -> str:
    """``seeds 1 and 2 are the same; seeds 3, 4 and 5 are the same`` (numbered from 1)."""
    groups: dict[str, list[int]] = {}
    for number, item in enumerate(items, start=1):
        groups.setdefault(json.dumps(item, sort_keys=True, default=str), []).append(number)
    noun = PLURALS.get(name, f"{name} items")
    repeated = [numbers for numbers in groups.values() if len(numbers) > 1]
    return "; ".join(f"{noun} {_and(numbers)} are the same" for numbers in repeated)


def _unknown_fields(name: str, error: ValidationError) -> str:
    found = UNEXPECTED.search(error.message)
    extra = re.findall(r"'([^']*)'", found.group(1)) if found else []
    known = list((error.schema.get("properties") or {}) if isinstance(error.schema, dict) else {})
    if not extra:
        return error.message[-200:]
    where = f" in {name}" if name != "the file" else ""
    parts = []
    for key in extra:
        near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        parts.append(f"`{key}`" + (f" (did you mean `{near[0]}`?)" if near else ""))
    fields = "an unknown field" if len(parts) == 1 else "unknown fields"
    return f"{_and(parts)}: {fields}{where}; the fields here are {', '.join(known)}"


def _name(path: list[str | int]) -> str:
    """The field an error is about: the last named key on its path (and which of its items)."""
    named = [p for p in path if isinstance(p, str)]
    name = named[-1] if named else "the file"
    return f"{name} item {path[-1] + 1}" if path and isinstance(path[-1], int) else name


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping of fields"
    return "text"


def _and(items: list[Any]) -> str:
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
