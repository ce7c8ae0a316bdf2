"""The MLX backend for real (mlx CPU on Linux): it learns, and its PEFT-layout adapter gives the
same logits on the torch model as the adapter gives inside mlx."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.runs import RunPaths
from labdesk.train.mix import mix_run
from labdesk.train.phases import train_run
from tests.train.helpers import tiny_recipe

pytest.importorskip("mlx.core", reason="mlx is not installed (pip install 'mlx-lm[cpu]')")


def test_mlx_phase_learns_and_its_adapter_matches_on_torch(
    run_paths: RunPaths, stories_dir: Path
) -> None:
    import mlx.core as mx
    import numpy as np
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from labdesk.train.mlx_backend import MlxStepper, load_model

    recipe = tiny_recipe(stories_dir, backend="mlx")
    recipe.train.phases = recipe.train.phases[:1]
    recipe.train.phases[0].epochs = 4
    mix_run(run_paths, recipe.mix, recipe.system_prompt)
    losses = train_run(run_paths, recipe, stories_dir)["knowledge_1"]
    quarter = max(1, len(losses) // 4)
    assert sum(losses[-quarter:]) / quarter < sum(losses[:quarter]) / quarter, losses

    adapter = run_paths.final_adapter
    model, keys = load_model(stories_dir, recipe.train)
    stepper = MlxStepper(model, keys, recipe.train, str(stories_dir))
    stepper.load_peft_adapter(adapter)
    model.eval()
    ids = [1, 300, 45, 97, 12, 400, 7, 256, 33, 2]
    mlx_logits = np.array(model(mx.array([ids])).astype(mx.float32))

    base = AutoModelForCausalLM.from_pretrained(str(stories_dir), dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, str(adapter)).eval()
    with torch.no_grad():
        torch_logits = tuned(input_ids=torch.tensor([ids])).logits.numpy()
    with tuned.disable_adapter(), torch.no_grad():
        plain = tuned(input_ids=torch.tensor([ids])).logits.numpy()
    np.testing.assert_allclose(mlx_logits, torch_logits, rtol=1e-3, atol=2e-4)
    assert np.abs(torch_logits - plain).max() > 1e-2  # the adapter really changes the model
