"""A GGUF file as the student: turned into a Hugging Face folder once, cached by its sha256.

Hobbyists often have only a GGUF, and one small GGUF can be teacher, judge and student at once.
transformers reads GGUF and dequantizes it to float32; the model it returns is flagged as
GGUF-quantized and refuses `save_pretrained`, so we build a fresh model from the same config,
load the weights into it and save a plain safetensors folder with the tokenizer and the chat
template. The folder lives under ``models/from-gguf/<sha256[:16]>/``, so the same file used by
two recipes converts once, and a changed file converts again.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.models.package_source import sha256_of

_SOURCE = "labdesk-source.json"
_HASHES = "hashes.json"


def cached_sha256(path: Path, cache_dir: Path) -> str:
    """The file's sha256, remembered by path, size and mtime (a 4 GB teacher hashes in ~10 s)."""
    stat = path.stat()
    key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    index = cache_dir / _HASHES
    try:
        known: dict[str, str] = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = sha256_of(path)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = index.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known, indent=1), encoding="utf-8")
        os.replace(tmp, index)
    return known[key]


def student_folder(gguf: Path, models_dir: Path, reporter: Reporter = null_reporter) -> Path:
    """The Hugging Face folder made from `gguf`, converting it on first use."""
    cache = models_dir / "from-gguf"
    digest = cached_sha256(gguf, cache)
    folder = cache / digest[:16]
    if (folder / _SOURCE).is_file():
        return folder
    reporter(Event("models", "message", f"converting {gguf.name} to a training folder (once)"))
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".convert-", dir=cache))
    try:
        convert(gguf, work)
        (work / _SOURCE).write_text(
            json.dumps({"gguf": str(gguf), "sha256": digest}, indent=1), encoding="utf-8"
        )
        try:
            os.replace(work, folder)
        except OSError:  # another process finished the same conversion first
            if not (folder / _SOURCE).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def convert(gguf: Path, out_dir: Path) -> None:
    """Dequantize `gguf` into a float32 safetensors folder transformers and peft can train."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from labdesk.hfquiet import quiet_transformers

    quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except Exception as exc:  # transformers' GGUF reader fails in many ways on odd files
        raise ModelError(
            f"transformers cannot read this GGUF as a trainable model ({type(exc).__name__}: {exc})",
            where=str(gguf),
            hint="use a GGUF of an architecture transformers reads (llama, mistral, qwen2, "
            "...), or give the student as a Hugging Face folder",
        ) from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    # A tied lm_head is reported missing; anything else means the conversion lost weights.
    lost = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if lost or unexpected:
        raise ModelError(
            f"converted weights do not fit the model: missing {lost[:3]}, "
            f"unexpected {unexpected[:3]}",
            where=str(gguf),
        )
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
