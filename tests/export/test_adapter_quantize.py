"""A LoRA adapter applied by llama.cpp equals the merged model; quantized files load and shrink."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labdesk.export import verify
from labdesk.export.gguf import convert_model
from labdesk.export.gguf_adapter import convert_adapter
from labdesk.export.quantize import quantize
from labdesk.tinymodels import BuiltinModel, build_tiny_model, chat_text


def _train_adapter(base: Path, out: Path) -> None:
    """A few real PEFT training steps, so A and B are both non-trivial."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules="all-linear",  # as labdesk trains: every projection
    )
    peft_model = get_peft_model(model, config)
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    ids = tokenizer(
        chat_text("Be brief.", "Why does ice float?", "It is lighter."), return_tensors="pt"
    )
    for _ in range(5):
        loss = peft_model(input_ids=ids.input_ids, labels=ids.input_ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    peft_model.save_pretrained(out / "adapter")
    peft_model.merge_and_unload().save_pretrained(out / "merged")
    tokenizer.save_pretrained(out / "merged")


def _logits(gguf: Path, tokens: list[int], lora: Path | None = None) -> np.ndarray:
    llm = verify.load(gguf, lora_path=lora)
    try:
        llm.eval(tokens)
        return np.asarray(llm.scores[: len(tokens)])
    finally:
        llm.close()


def test_gguf_adapter_equals_merged_model(tiny_bpe: BuiltinModel, tmp_path: Path) -> None:
    _assert_adapter_equals_merged(tiny_bpe, tmp_path)


def test_gguf_adapter_equals_merged_model_in_each_recipe_family(
    family_model: BuiltinModel, tmp_path: Path
) -> None:
    """Qwen2's lora_b of q/k stay unpermuted, Mistral's wider heads and Granite's scales hold."""
    _assert_adapter_equals_merged(family_model, tmp_path)


def _assert_adapter_equals_merged(base: BuiltinModel, tmp_path: Path) -> None:
    _train_adapter(base.hf_dir, tmp_path)
    adapter = convert_adapter(
        tmp_path / "adapter", base.hf_dir, tmp_path / "lora.gguf", base_gguf=base.gguf
    )
    merged = convert_model(tmp_path / "merged", tmp_path / "merged.gguf", outtype="f32")
    llm = verify.load(base.gguf)
    tokens = llm.tokenize(chat_text("Hi.", "What is a map?", "A picture.").encode(), special=True)
    llm.close()
    with_adapter = _logits(base.gguf, tokens, lora=adapter)
    assert np.abs(with_adapter - _logits(merged, tokens)).max() < 1e-4
    assert np.abs(with_adapter - _logits(base.gguf, tokens)).max() > 1e-2  # it did something


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> BuiltinModel:
    """Rows of 256+ values, so k-quants apply instead of llama.cpp's fallbacks."""
    out = tmp_path_factory.mktemp("wide")
    return build_tiny_model(
        out / "hf", hidden=256, heads=4, kv_heads=4, intermediate=768, layers=2, outtype="f16"
    )


@pytest.mark.parametrize(("method", "low", "high"), [("q8_0", 8.0, 9.0), ("q4_k_m", 4.4, 6.0)])
def test_quantized_files_load_generate_and_have_the_right_size(
    wide_model: BuiltinModel, tmp_path: Path, method: str, low: float, high: float
) -> None:
    from gguf import GGUFReader

    out = quantize(wide_model.gguf, tmp_path / f"{method}.gguf", method)  # type: ignore[arg-type]
    reader = GGUFReader(out)
    weights = [t for t in reader.tensors if len(t.shape) > 1]
    bits = 8 * sum(int(t.n_bytes) for t in weights) / sum(int(t.n_elements) for t in weights)
    assert low <= bits <= high, f"{method}: {bits:.2f} bits per weight"
    assert out.stat().st_size < wide_model.gguf.stat().st_size * high / 16 * 1.25
    llm = verify.load(out)
    assert len(verify.greedy_check(llm, out)) == 8
    llm.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{method}.gguf"]
