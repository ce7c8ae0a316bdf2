"""Fold a trained LoRA adapter into its student: a plain Hugging Face folder, ready for GGUF.

QLoRA trains against a 4-bit copy of the student, but merging into 4-bit weights would bake the
quantization error into every layer. So the base is always loaded from its own (full precision)
files, the adapter applied on top, and `merge_and_unload` adds the low-rank update exactly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter, null_reporter

# Files save_pretrained writes itself; everything else in the base folder (tokenizer, generation
# config, licence) is carried over unchanged, because a tokenizer round trip through
# transformers can drop files such as tokenizer.model.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_WRITTEN = {"config.json", "model.safetensors.index.json", "pytorch_model.bin.index.json"}


def _stored_dtype(base_dir: Path) -> str:
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    dtype = config.get("dtype") or config.get("torch_dtype") or "float32"
    return str(dtype)


def merge_adapter(
    base_dir: Path, adapter_dir: Path, out_dir: Path, *, reporter: Reporter = null_reporter
) -> Path:
    """Write base + adapter, merged, to `out_dir` (replaced atomically); return `out_dir`.

    The merge runs in float32 and the result is saved in the base's stored dtype, so a bf16
    student stays bf16 on disk and no precision is lost to the arithmetic of the merge.
    """
    for folder, what in ((base_dir, "student model"), (adapter_dir, "adapter")):
        if not folder.is_dir():
            raise ModelError(f"the {what} folder does not exist", where=str(folder))
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelError(
            "no adapter_config.json: this is not a PEFT adapter folder",
            where=str(adapter_dir),
            hint="train the run first (`labdesk train RUN`) or point at its train/final folder",
        )
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    reporter(Event("export", "start", "merging the adapter into the student", step="merge"))
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    try:
        tuned = PeftModel.from_pretrained(base, adapter_dir)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(
            f"the adapter does not fit this student: {exc}",
            where=str(adapter_dir),
            hint="export with the recipe the run was trained with",
        ) from None
    merged = tuned.merge_and_unload()
    merged.to(getattr(torch, _stored_dtype(base_dir), torch.float32))

    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    for item in base_dir.iterdir():
        if item.is_file() and item.suffix not in _WEIGHT_SUFFIXES and item.name not in _WRITTEN:
            shutil.copy2(item, tmp / item.name)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    reporter(Event("export", "done", "merged", step="merge"))
    return out_dir
