"""Which model to chat with: a tuned model from the workspace registry, or any GGUF file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labdesk.chat.chatter import Chatter
from labdesk.errors import ModelError
from labdesk.recipes import EngineSettings
from labdesk.workspace import Workspace

DEFAULT_CTX = 4096


@dataclass(frozen=True)
class ChatModel:
    ref: str
    """What finds it again (saved with a conversation): a tuned model's name or a GGUF path."""
    name: str
    gguf: Path
    system_prompt: str
    """The system prompt the model was trained with ("" for a plain GGUF)."""
    n_ctx: int
    base_gguf: Path | None = None
    """The same model before tuning, for side-by-side comparison."""


def resolve_chat_model(ws: Workspace, ref: str | None) -> ChatModel:
    """`ref`: a tuned model's name, a path to a .gguf file, or None for the newest tuned model."""
    from labdesk.export.registry import find_tuned, list_tuned

    if ref is None:
        tuned = list_tuned(ws)
        if not tuned:
            raise ModelError(
                "there is no tuned model to chat with yet",
                hint="export a trained run (`labdesk export run RUN`) or name a .gguf file",
            )
        ref = tuned[0].name
    path = Path(ref).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError("the model file does not exist", where=str(path))
        from labdesk.models.ggufinfo import read_gguf

        info = read_gguf(path)
        n_ctx = min(info.n_ctx_train, DEFAULT_CTX) if info.n_ctx_train else DEFAULT_CTX
        return ChatModel(str(path.resolve()), path.stem, path.resolve(), "", n_ctx)
    model = find_tuned(ws, ref)
    return ChatModel(
        model.name,
        model.name,
        Path(model.gguf),
        model.system_prompt,
        model.n_ctx,
        Path(model.base_gguf) if Path(model.base_gguf).is_file() else None,
    )


def open_chatter(
    model: ChatModel,
    *,
    gguf: Path | None = None,
    temperature: float = 0.7,
    seed: int | None = None,
    max_tokens: int = 512,
    n_threads: int | None = None,
    chat_template: str | None = None,
) -> Chatter:
    """Load `model` (or its `gguf` override, e.g. the base for comparison) for one-at-a-time chat."""
    from labdesk.models.engine import Engine

    settings = EngineSettings(
        n_ctx=max(model.n_ctx, 256), parallel=1, n_threads=n_threads, chat_template=chat_template
    )
    path = gguf or model.gguf
    engine = Engine.load(path, settings)
    stop = engine.template.stop
    return Chatter(
        engine,
        model=model.name if gguf is None else f"{model.name} (base)",
        n_ctx=engine.n_ctx,
        stop=stop,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )
