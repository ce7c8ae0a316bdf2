"""A real PEFT LoRA adapter on the real stories260K student, with non-zero (random) updates,
and that run exported as a chat model the way `labdesk export run` does."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from labdesk.events import Event
from labdesk.export.registry import TunedModel
from labdesk.export.run_export import export_run
from labdesk.recipes import Recipe
from labdesk.runs import RunPaths
from labdesk.workspace import Workspace
from tests.evaluate.planted import make_student, planted_recipe


@pytest.fixture(scope="session")
def stories_adapter(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import SHARED_FIXTURES

    base = SHARED_FIXTURES / "stories260K" / "hf"
    if not base.is_dir():
        pytest.skip(f"stories260K fixture not found at {base}")
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules="all-linear",  # as labdesk trains: every projection
        init_lora_weights=False,  # random A and B: the merge must move every targeted weight
    )
    peft_model = get_peft_model(model, config)
    out = tmp_path_factory.mktemp("adapter") / "final"
    peft_model.save_pretrained(out)
    return base, out


class Exported(NamedTuple):
    ws: Workspace
    run: RunPaths
    recipe: Recipe
    student: Path
    model: TunedModel
    events: list[Event]


@pytest.fixture(scope="module")
def exported(
    stories_adapter: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Exported:
    base_dir, adapter_dir = stories_adapter
    root = tmp_path_factory.mktemp("export")
    student = make_student(base_dir, root / "student")
    ws = Workspace.open(root / "ws")
    run = RunPaths(ws.run_dir("lily"))
    shutil.copytree(adapter_dir, run.final_adapter)
    recipe = planted_recipe(student)
    events: list[Event] = []
    model = export_run(run, recipe, ws, student_dir=student, reporter=events.append)
    return Exported(ws, run, recipe, student, model, events)
