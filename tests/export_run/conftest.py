"""A real PEFT LoRA adapter on the real stories260K student, with non-zero (random) updates."""

from __future__ import annotations

from pathlib import Path

import pytest


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
