"""Tuned models the chat and the TUI can offer: one folder per run under ``models/tuned/``.

Each folder holds the chat GGUF, the adapter-only GGUF, the Ollama Modelfile and ``model.json``
(this record). One small file per model, rather than one shared index, so two exports never
race on the same file and deleting a folder unregisters its model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from labdesk.errors import ModelError
from labdesk.fileio import write_json
from labdesk.workspace import Workspace

RECORD = "model.json"


@dataclass(frozen=True)
class TunedModel:
    name: str
    """The run's name; also the folder name."""
    gguf: str
    """The GGUF to chat with (quantized as the recipe asks)."""
    base_gguf: str
    """The student before tuning, same precision as `merged_gguf`: for /compare and evaluation."""
    merged_gguf: str
    """Base + adapter merged, unquantized."""
    adapter_gguf: str
    """The LoRA alone, to apply on `base_gguf` at load time (quick A/B without a merge)."""
    modelfile: str | None
    system_prompt: str
    n_ctx: int
    quantize: str
    recipe: str
    created: str


def tuned_root(ws: Workspace) -> Path:
    return ws.models / "tuned"


def tuned_dir(ws: Workspace, name: str) -> Path:
    return tuned_root(ws) / name


def register(ws: Workspace, model: TunedModel) -> Path:
    path = tuned_dir(ws, model.name) / RECORD
    write_json(path, asdict(model))
    return path


def list_tuned(ws: Workspace) -> list[TunedModel]:
    """Registered models whose chat GGUF still exists, newest first."""
    models = []
    for record in tuned_root(ws).glob(f"*/{RECORD}"):
        try:
            model = TunedModel(**json.loads(record.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError):
            continue  # a damaged record hides one model; `find_tuned` names the problem
        if Path(model.gguf).is_file():
            models.append(model)
    return sorted(models, key=lambda m: m.created, reverse=True)


def find_tuned(ws: Workspace, name: str) -> TunedModel:
    record = tuned_dir(ws, name) / RECORD
    if not record.is_file():
        known = ", ".join(m.name for m in list_tuned(ws)) or "none yet"
        raise ModelError(
            f"no tuned model named '{name}'",
            where=str(tuned_root(ws)),
            hint=f"export a trained run with `labdesk export run RUN` (tuned models: {known})",
        )
    try:
        model = TunedModel(**json.loads(record.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelError(
            f"the model record cannot be read ({exc})",
            where=str(record),
            hint="export the run again: `labdesk export run NAME`",
        ) from None
    if not Path(model.gguf).is_file():
        raise ModelError(
            "the model's GGUF file is gone",
            where=model.gguf,
            hint=f"export the run again: `labdesk export run {name}`",
        )
    return model
