from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.errors import ModelError
from labdesk.export.merge import merge_adapter


def test_merged_model_equals_base_plus_adapter(
    stories_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir, adapter_dir = stories_adapter
    out = merge_adapter(base_dir, adapter_dir, tmp_path / "merged")

    assert (out / "tokenizer.model").is_file()  # carried over, not re-serialized
    assert not (tmp_path / ".merged.tmp").exists()
    ids = torch.tensor([[1, 403, 407, 261, 378, 66, 259]])
    with torch.no_grad():
        reference = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32), adapter_dir
        )(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)(ids).logits
    assert torch.allclose(merged, reference, atol=1e-4)
    assert not torch.allclose(merged, base, atol=1e-2)  # the adapter really changed the model


def test_a_folder_without_adapter_config_is_refused(
    stories_adapter: tuple[Path, Path], tmp_path: Path
) -> None:
    base_dir, _ = stories_adapter
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"adapter_config\.json"):
        merge_adapter(base_dir, tmp_path / "empty", tmp_path / "merged")
