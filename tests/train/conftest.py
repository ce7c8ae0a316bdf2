"""Fixtures for training tests: the real stories260K model with a chat template, and a run
folder holding generated samples."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from labdesk.fileio import write_jsonl
from labdesk.runs import RunPaths
from tests.train.helpers import CHAT_TEMPLATE, SHARED, knowledge_samples, sample, skill_samples


@pytest.fixture(scope="session")
def stories_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """stories260K with a chat template in its tokenizer config (a temp copy)."""
    source = SHARED / "stories260K" / "hf"
    if not source.is_dir():
        pytest.skip(f"real-world fixtures not found at {SHARED}")
    from transformers import AutoTokenizer

    dest = tmp_path_factory.mktemp("stories") / "hf"
    shutil.copytree(source, dest)
    tokenizer = AutoTokenizer.from_pretrained(str(dest))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(dest))
    return dest


@pytest.fixture
def run_paths(tmp_path: Path) -> RunPaths:
    run = RunPaths(tmp_path / "run")
    by_leaf: dict[str, list[dict[str, Any]]] = {}
    for row in knowledge_samples() + skill_samples():
        by_leaf.setdefault(row["metadata"]["leaf"], []).append(row)
    for leaf, rows in by_leaf.items():
        write_jsonl(run.accepted(leaf.replace("/", "__")), rows)
    write_jsonl(
        run.rejected("knowledge__stories__brindle"), [sample("x", "knowledge", "q", "a", "r")]
    )
    return run
