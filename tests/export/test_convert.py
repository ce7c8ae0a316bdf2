"""Our GGUF against transformers on the same weights: same greedy tokens and text, close logits.

Tolerances: 1e-3 on the real stories260K and the tiny Llamas (as llama.cpp's own converter
achieves, 5.5e-4); 1e-4 on the family builds at f32, whose logits span about ±8 (measured: at
most 2e-5). A wrong rotary layout, a lost bias or multiplier moves them by more than 0.4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labdesk.export import verify
from labdesk.export.gguf import convert_model
from labdesk.tinymodels import BuiltinModel, build_tiny_model
from tests.export.helpers import assert_matches_transformers, export_cli

# model_type → GGUF architecture, llama.cpp pre-tokenizer, whether an output matrix is written
FAMILY_LAYOUT = {
    "qwen2": ("qwen2", "qwen2", False),  # tied embeddings
    "mistral": ("llama", "tekken", True),
    "granite": ("granite", "refact", False),
}


def test_stories260k_matches_transformers(stories_hf: Path, tmp_path: Path) -> None:
    out = convert_model(stories_hf, tmp_path / "stories.gguf", outtype="f32")
    assert_matches_transformers(stories_hf, out)
    assert [p.name for p in tmp_path.iterdir()] == ["stories.gguf"]


@pytest.mark.parametrize("kind", ["tiny_bpe", "tiny_spm"])
def test_tiny_models_match_transformers(kind: str, request: pytest.FixtureRequest) -> None:
    model: BuiltinModel = request.getfixturevalue(kind)
    assert_matches_transformers(model.hf_dir, model.gguf, n_new=32)


def test_real_recipe_families_round_trip_through_the_cli(
    family_model: BuiltinModel, tmp_path: Path
) -> None:
    from gguf import GGUFReader

    config = json.loads((family_model.hf_dir / "config.json").read_text())
    arch, pre, untied = FAMILY_LAYOUT[config["model_type"]]
    out = tmp_path / "model.gguf"
    result = export_cli(str(family_model.hf_dir), "--outtype", "f32", "-o", str(out))
    assert result.returncode == 0, result.stderr
    reader = GGUFReader(out)
    names = {t.name for t in reader.tensors}
    field = reader.fields["tokenizer.ggml.pre"]
    assert (str(reader.fields["general.architecture"].contents()), field.contents()) == (arch, pre)
    assert ("output.weight" in names) == untied
    assert ("blk.0.attn_q.bias" in names) == (config["model_type"] == "qwen2")
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    assert len(tokens) == config["vocab_size"]  # Qwen2's padded rows are unused tokens
    assert_matches_transformers(family_model.hf_dir, out, n_new=32, tolerance=1e-4)


def test_a_qwen2_written_with_llamas_rotary_permutation_does_not_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The comparison above catches the mistake the qwen2 path exists to avoid."""
    from labdesk.export import architectures
    from tests.export.conftest import FAMILY_SPECS

    model = build_tiny_model(tmp_path / "hf", FAMILY_SPECS["qwen2"])
    monkeypatch.setattr(architectures, "_NO_QK_PERMUTE", set())
    wrong = convert_model(model.hf_dir, tmp_path / "wrong.gguf", outtype="f32", check=False)
    with pytest.raises(AssertionError):
        assert_matches_transformers(model.hf_dir, wrong, n_new=8, tolerance=1e-4)


@pytest.mark.parametrize("outtype", ["f16", "bf16"])
def test_half_precision_outputs_stay_close(stories_hf: Path, tmp_path: Path, outtype: str) -> None:
    from gguf import GGUFReader

    f32 = convert_model(stories_hf, tmp_path / "f32.gguf", outtype="f32")
    half = convert_model(stories_hf, tmp_path / f"{outtype}.gguf", outtype=outtype)  # type: ignore[arg-type]
    types = {t.name: t.tensor_type.name for t in GGUFReader(half).tensors}
    assert types["blk.0.attn_q.weight"] == outtype.upper()
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert half.stat().st_size < 0.6 * f32.stat().st_size
    logits = []
    for path in (f32, half):
        llm = verify.load(path)
        llm.eval(llm.tokenize(b"Once upon a time", add_bos=True))
        logits.append(np.asarray(llm.scores[llm.n_tokens - 1]))
        llm.close()
    assert np.abs(logits[0] - logits[1]).max() < 0.1
    assert np.argmax(logits[0]) == np.argmax(logits[1])
