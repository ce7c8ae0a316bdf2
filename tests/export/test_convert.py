"""Our GGUF against transformers on the same weights: same greedy tokens, logits within 1e-3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labdesk.export import verify
from labdesk.export.gguf import convert_model
from labdesk.tinymodels import BuiltinModel

PROMPTS = ["Once upon a time", "The little dog saw a big", "Lily and Tom went to the park.\nThey"]


def assert_matches_transformers(hf_dir: Path, gguf: Path, n_new: int = 64) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    llm = verify.load(gguf, n_ctx=256)
    try:
        for prompt in PROMPTS:
            ids = tokenizer(prompt).input_ids
            assert llm.tokenize(prompt.encode(), add_bos=True, special=True) == ids
            with torch.no_grad():
                hf_tokens = model.generate(
                    torch.tensor([ids]), max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False
                )[0].tolist()
                hf_logits = model(torch.tensor([hf_tokens])).logits[0].numpy()
            llm.reset()
            llm.eval(ids)
            ours = []
            for _ in range(n_new):
                token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                ours.append(token)
                llm.eval([token])
            assert ours == hf_tokens[len(ids) :], prompt
            llm.reset()
            llm.eval(hf_tokens)
            diff = np.abs(np.asarray(llm.scores[: len(hf_tokens)]) - hf_logits).max()
            assert diff < 1e-3, f"{prompt!r}: max logit difference {diff}"
    finally:
        llm.close()


def test_stories260k_matches_transformers(stories_hf: Path, tmp_path: Path) -> None:
    out = convert_model(stories_hf, tmp_path / "stories.gguf", outtype="f32")
    assert_matches_transformers(stories_hf, out)
    assert [p.name for p in tmp_path.iterdir()] == ["stories.gguf"]


@pytest.mark.parametrize("kind", ["tiny_bpe", "tiny_spm"])
def test_tiny_models_match_transformers(kind: str, request: pytest.FixtureRequest) -> None:
    model: BuiltinModel = request.getfixturevalue(kind)
    assert_matches_transformers(model.hf_dir, model.gguf, n_new=32)


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
