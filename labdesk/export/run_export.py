"""`labdesk export run RUN`: from a trained adapter to a chat model in the workspace.

Steps, each skipped when its output exists and was made from the same inputs (the fingerprints
live in ``<run>/export/manifest.json``):

1. merge the final adapter into the full-precision student (``<run>/export/merged/``);
2. write the merged model and the untouched student as GGUF at the recipe's ``outtype``
   (our converter loads each back with llama.cpp before keeping it);
3. quantize the merged GGUF to the recipe's format (or keep it as is with ``quantize: none``);
4. write the adapter alone as a GGUF LoRA, for A/B on the base GGUF without a merge;
5. write an Ollama Modelfile and register the model (``models/tuned/<run>/model.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.export.registry import TunedModel, register, tuned_dir
from labdesk.fileio import write_json, write_text
from labdesk.recipes import Recipe
from labdesk.runs import RunPaths
from labdesk.workspace import Workspace


def _digest_files(folder: Path) -> str:
    """Content hash of a small folder (an adapter); size+mtime for big weight files."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode())
        stat = file.stat()
        if stat.st_size < 256 * 1024 * 1024:
            digest.update(hashlib.sha256(file.read_bytes()).digest())
        else:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


class _Manifest:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.steps: dict[str, str] = (
            json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        )

    def run(
        self,
        step: str,
        fingerprint: str,
        outputs: list[Path],
        make: Callable[[], Any],
        reporter: Reporter,
    ) -> bool:
        """Run `make` unless every output exists and was made from `fingerprint`."""
        if self.steps.get(step) == fingerprint and all(p.exists() for p in outputs):
            reporter(Event("export", "message", f"{step}: up to date", step=step))
            return False
        self.steps.pop(step, None)
        write_json(self.path, self.steps)  # forget the old result before replacing it
        make()
        self.steps[step] = fingerprint
        write_json(self.path, self.steps)
        return True


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def export_run(
    run: RunPaths,
    recipe: Recipe,
    ws: Workspace,
    *,
    student_dir: Path,
    reporter: Reporter = null_reporter,
) -> TunedModel:
    """Export `run`'s final adapter as a chat model; returns its registry record."""
    from labdesk.export.gguf import convert_model
    from labdesk.export.gguf_adapter import convert_adapter
    from labdesk.export.merge import merge_adapter
    from labdesk.export.modelfile import render_modelfile
    from labdesk.export.quantize import quantize
    from labdesk.models.chat_template import ChatTemplate
    from labdesk.models.ggufinfo import read_gguf

    adapter = run.final_adapter
    if not (adapter / "adapter_config.json").is_file():
        raise ModelError(
            "this run has no trained adapter yet",
            where=str(adapter),
            hint=f"train it first: `labdesk train {run.root.name}`",
        )
    settings = recipe.export
    name = run.root.name
    out = tuned_dir(ws, name)
    out.mkdir(parents=True, exist_ok=True)
    manifest = _Manifest(run.export / "manifest.json")
    student_fp = _digest_files(student_dir)
    adapter_fp = _digest_files(adapter)

    merged_dir = run.export / "merged"
    manifest.run(
        "merge",
        _fingerprint(student_fp, adapter_fp),
        [merged_dir],
        lambda: merge_adapter(student_dir, adapter, merged_dir, reporter=reporter),
        reporter,
    )
    # Unquantized, the merged GGUF is what the user chats with: it lives with the chat model.
    merged_gguf = (
        out if settings.quantize == "none" else run.export
    ) / f"{name}-{settings.outtype}.gguf"
    manifest.run(
        "merged-gguf",
        _fingerprint(student_fp, adapter_fp, settings.outtype),
        [merged_gguf],
        lambda: convert_model(merged_dir, merged_gguf, outtype=settings.outtype, reporter=reporter),
        reporter,
    )
    base_gguf = run.export / f"base-{settings.outtype}.gguf"
    manifest.run(
        "base-gguf",
        _fingerprint(student_fp, settings.outtype),
        [base_gguf],
        lambda: convert_model(student_dir, base_gguf, outtype=settings.outtype, reporter=reporter),
        reporter,
    )

    quant = settings.quantize
    if quant == "none":
        chat_gguf = merged_gguf
    else:
        chat_gguf = out / f"{name}-{settings.quantize}.gguf"
        manifest.run(
            "quantize",
            _fingerprint(student_fp, adapter_fp, settings.outtype, settings.quantize),
            [chat_gguf],
            lambda: quantize(merged_gguf, chat_gguf, quant, reporter=reporter),
            reporter,
        )

    adapter_gguf = out / f"{name}-lora-{settings.outtype}.gguf"
    manifest.run(
        "adapter-gguf",
        _fingerprint(student_fp, adapter_fp, settings.outtype),
        [adapter_gguf],
        lambda: convert_adapter(
            adapter,
            student_dir,
            adapter_gguf,
            base_gguf=base_gguf,
            outtype=settings.outtype,
            reporter=reporter,
        ),
        reporter,
    )

    info = read_gguf(chat_gguf)
    modelfile: Path | None = None
    template = ChatTemplate.for_gguf(info, recipe.engine.chat_template)
    if settings.ollama_modelfile and template.source:
        chat_format = template.format
        modelfile = out / "Modelfile"
        gguf_ref = os.path.relpath(chat_gguf, out)
        write_text(
            modelfile,
            render_modelfile(
                gguf_ref, chat_format, recipe.system_prompt, num_ctx=recipe.train.max_seq_len
            ),
        )
    elif settings.ollama_modelfile:
        reporter(Event("export", "warning", "the model has no chat template: no Modelfile written"))

    model = TunedModel(
        name=name,
        gguf=str(chat_gguf),
        base_gguf=str(base_gguf),
        merged_gguf=str(merged_gguf),
        adapter_gguf=str(adapter_gguf),
        modelfile=str(modelfile) if modelfile else None,
        system_prompt=recipe.system_prompt,
        n_ctx=min(info.n_ctx_train, recipe.engine.n_ctx)
        if info.n_ctx_train
        else recipe.engine.n_ctx,
        quantize=settings.quantize,
        recipe=recipe.name,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    register(ws, model)
    reporter(Event("export", "done", f"chat model '{name}': {chat_gguf}"))
    return model
