"""The runtime on labdesk's own built-in teacher: found through the store, its GGUF chat template,
special chat tokens, batched = sequential on chat prompts sharing a system prompt, and schemas."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from labdesk.models.batch import BatchDecoder
from labdesk.models.engine import Engine
from labdesk.models.store import list_models, resolve_model
from labdesk.models.types import GenRequest
from labdesk.recipes import ModelRef
from labdesk.workspace import Workspace

from .conftest import load

SYSTEM = "You are a careful teacher. Write one short question about the text, then stop. " * 3


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace.open(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def teacher(ws: Workspace) -> Engine:
    path = resolve_model(ModelRef(builtin="tiny-teacher"), ws, want="gguf")
    assert path.suffix == ".gguf" and path.is_file()
    return load(path, parallel=4, n_ctx=1024)


def _chat(engine: Engine, user: str) -> str:
    return engine.chat_prompt(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    )


def test_chat_template_comes_from_the_gguf(teacher: Engine) -> None:
    prompt = _chat(teacher, "Hi")
    assert prompt.startswith("<|system|>\n") and prompt.endswith("<|assistant|>\n")
    tokens = teacher.tokenize(prompt)
    # The chat markers are single control tokens, not spelled out piece by piece.
    marker = teacher.tokenize("<|assistant|>")
    assert len(marker) <= 2 and marker[-1] in tokens


def test_batched_chat_prompts_equal_sequential(teacher: Engine, tmp_path: Path) -> None:
    users = [f"Text number {i}: the river runs {'far ' * i}to the sea." for i in range(7)]
    requests = [GenRequest(_chat(teacher, u), max_tokens=12 + i) for i, u in enumerate(users)]
    sequential = [load(teacher.path, parallel=1, n_ctx=1024).generate([r])[0] for r in requests]
    batched = teacher.generate(requests)
    assert [r.text for r in batched] == [r.text for r in sequential]
    assert BatchDecoder(teacher, requests, None).prefix_len > 40  # the system prompt is shared


def test_schema_answers_from_the_teacher_validate(teacher: Engine) -> None:
    schema = {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 40},
            "score": {"type": "integer", "minimum": 1, "maximum": 3},
        },
        "required": ["reason", "score"],
    }
    requests = [
        GenRequest(_chat(teacher, f"Judge answer {i}"), 120, temperature=1.0, seed=i, schema=schema)
        for i in range(40)
    ]
    for result in teacher.generate(requests):
        assert result.finish_reason == "stop", result.text
        jsonschema.validate(json.loads(result.text), schema)


def test_built_models_are_listed(teacher: Engine, ws: Workspace) -> None:
    listed = {m.name: m for m in list_models(ws)}
    assert listed["builtin:tiny-teacher"].size > teacher.path.stat().st_size
