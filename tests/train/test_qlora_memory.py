"""QLoRA's bitsandbytes path (nf4 runs on CPU, slowly), the CUDA run, and memory planning."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.errors import ModelError
from labdesk.memory import check_training_fits
from labdesk.runs import RunPaths
from labdesk.train.mix import mix_run
from labdesk.train.phases import train_run
from tests.train.helpers import tiny_recipe


def _qlora_run(run_paths: RunPaths, stories_dir: Path) -> list[float]:
    recipe = tiny_recipe(stories_dir, quantize_4bit=True, gradient_checkpointing=True)
    recipe.train.phases = recipe.train.phases[:1]
    recipe.train.phases[0].epochs = 3
    mix_run(run_paths, recipe.mix, recipe.system_prompt)
    return train_run(run_paths, recipe, stories_dir)["knowledge_1"]


@pytest.mark.slow
def test_qlora_nf4_path_trains_on_cpu(run_paths: RunPaths, stories_dir: Path) -> None:
    import bitsandbytes as bnb

    from labdesk.train.torch_backend import load_base

    recipe = tiny_recipe(stories_dir, quantize_4bit=True)
    base = load_base(stories_dir, recipe.train, "cpu")
    quantized = [m for m in base.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(quantized) == 5 * 7  # every linear layer of the 5 blocks is nf4
    assert quantized[0].weight.quant_type == "nf4"
    losses = _qlora_run(run_paths, stories_dir)
    third = max(1, len(losses) // 3)
    assert sum(losses[-third:]) < sum(losses[:third]), losses
    assert (run_paths.final_adapter / "adapter_model.safetensors").is_file()


@pytest.mark.cuda
def test_qlora_on_cuda(run_paths: RunPaths, stories_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine: the nf4 QLoRA run on a GPU was not exercised")
    losses = _qlora_run(run_paths, stories_dir)
    assert losses[-1] < losses[0]


def test_memory_plan_refuses_what_will_not_fit_and_says_what_to_change(stories_dir: Path) -> None:
    recipe = tiny_recipe(stories_dir, gradient_checkpointing=False)
    phase = recipe.train.phases[0]
    plan = check_training_fits(stories_dir, recipe.train, phase, device="cpu", available=8 * 2**30)
    assert 0 < plan.total < 8 * 2**30
    with pytest.raises(ModelError) as info:
        check_training_fits(
            stories_dir, recipe.train, phase, device="cpu", available=plan.total // 2
        )
    assert "quantize_4bit" in (info.value.hint or "")
    assert "gradient_checkpointing" in (info.value.hint or "")
    # a 7B student with huge micro-batches on an 8 GB card: told to shrink the batch
    qwen7b = {
        "hidden_size": 3584,
        "num_hidden_layers": 28,
        "intermediate_size": 18944,
        "vocab_size": 152064,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
    }
    big = recipe.train.model_copy(
        update={"quantize_4bit": True, "max_seq_len": 4096, "gradient_checkpointing": True}
    )
    folder = stories_dir.parent / "qwen7b-config"
    folder.mkdir(exist_ok=True)
    import json

    (folder / "config.json").write_text(json.dumps(qwen7b))
    heavy = phase.model_copy(update={"batch_tokens": 16384})
    with pytest.raises(ModelError) as info:
        check_training_fits(folder, big, heavy, device="cuda", available=8 * 2**30)
    assert "batch_tokens to 8192" in (info.value.hint or "")
    light = phase.model_copy(update={"batch_tokens": 512})
    assert (
        check_training_fits(folder, big, light, device="cuda", available=8 * 2**30).total
        < 8 * 2**30
    )
