"""Each shipped recipe's teacher fits the hardware the recipe names, by the engine's own plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.models.engine import plan_for
from labdesk.models.ggufinfo import GGUFInfo
from labdesk.recipes import load_recipe

GIB = 1024**3
# merlinite-7b-lab Q4_K_M, the recipes' teacher: a Mistral-7B shape (published config) and
# the GGUF's size as the recipes pin it. Not downloaded here.
MERLINITE = GGUFInfo(
    path=Path("merlinite-7b-lab-Q4_K_M.gguf"),
    architecture="llama",
    name="merlinite-7b-lab",
    n_layer=32,
    n_embd=4096,
    n_head=32,
    n_head_kv=8,
    n_ctx_train=32768,
    n_vocab=32008,
    weight_bytes=4_370_000_000,
    chat_template=None,
    bos_token="<s>",
    eos_token="</s>",
)


@pytest.mark.parametrize(
    ("recipe", "gpu_layers", "budget_gib"),
    [
        ("cuda-8gb", 999, 7.5),  # an 8 GB card with a desktop on it
        ("cuda-24gb", 999, 22.0),
        ("apple-16gb", 999, 10.5),  # Metal's default share of 16 GB
        ("cpu", 0, 12.0),  # 16 GB of RAM with the OS and an editor open
    ],
)
def test_the_teacher_fits_the_recipes_hardware(
    recipe: str, gpu_layers: int, budget_gib: float
) -> None:
    plan = plan_for(MERLINITE, load_recipe(recipe).engine, gpu_layers)
    need = plan.vram if recipe.startswith("cuda") else plan.total
    assert need / GIB <= budget_gib, f"{recipe}: {need / GIB:.2f} GiB planned"
