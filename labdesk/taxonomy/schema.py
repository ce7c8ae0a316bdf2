"""Upstream's JSON schemas (from the `instructlab-schema` package), chosen by a file's version."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

SCHEMA_NAMES = ("compositional_skills", "knowledge")
"""The taxonomy's top folders, which are also the schema names."""


@dataclass(frozen=True)
class Schema:
    validator: Validator | None
    deprecated: str | None
    """Upstream's deprecation message when this version is no longer accepted."""


@functools.lru_cache(maxsize=64)
def _resource(version: str, name: str) -> Resource[Any]:
    from instructlab.schema import schema_base

    path = schema_base().joinpath(version, name)
    try:
        contents = json.loads(path.read_text(encoding="utf-8"))
    except Exception as exc:  # a missing version folder is an ordinary, reported outcome
        raise NoSuchResource(str(path)) from exc
    return Resource.from_contents(contents, default_specification=DRAFT202012)


@functools.lru_cache(maxsize=64)
def load_schema(version: object, name: str) -> Schema:
    """The schema `name` (``knowledge`` or ``compositional_skills``) of `version`.

    `version` is whatever the file declared after upstream's coercion (usually an int, but a
    ``true`` stays a bool, which names no schema folder). Raises `NoSuchResource` when there is
    no such schema.
    """
    folder = f"v{version}"
    contents = _resource(folder, f"{name}.json").contents
    if isinstance(contents, Mapping) and contents.get("deprecated"):
        message = contents.get("description") or f"{name} schema version {version} is deprecated"
        return Schema(None, str(message))
    registry: Registry[Any] = Registry(retrieve=functools.partial(_retrieve, folder))  # type: ignore[call-arg]
    return Schema(validator_for(contents)(contents, registry=registry), None)


def _retrieve(folder: str, uri: str) -> Resource[Any]:
    return _resource(folder, uri)
