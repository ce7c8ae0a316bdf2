"""`labdesk serve RUN`: a run's tuned model as an OpenAI-compatible endpoint on this machine.

llama-cpp-python's own server (``llama_cpp.server``: FastAPI + uvicorn) serves the exported chat
GGUF. What labdesk adds is the run's chat format: a request is rendered with the template the run
was exported with (the recipe's override, else the GGUF's own), and a conversation that brings
no system message gets the system prompt the model was trained with, as `labdesk chat` does.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labdesk.errors import ConfigError

if TYPE_CHECKING:
    from labdesk.export.registry import TunedModel
    from labdesk.models.ggufinfo import GGUFInfo
    from labdesk.recipes import Recipe

HOST = "127.0.0.1"
_N_BATCH = 512


@dataclass(frozen=True)
class Endpoint:
    """What `serve` will start: the model, and where clients reach it."""

    name: str
    gguf: Path
    port: int
    n_ctx: int
    chat_template: str
    system_prompt: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"


def endpoint(model: TunedModel, recipe: Recipe, port: int) -> Endpoint:
    """The endpoint for a registered tuned model, checked before anything is loaded."""
    from labdesk.models.chat_template import ChatTemplate
    from labdesk.models.ggufinfo import read_gguf

    template = ChatTemplate.for_gguf(read_gguf(Path(model.gguf)), recipe.engine.chat_template)
    template.stop  # noqa: B018 - a model without a usable template fails here, clearly
    assert template.source is not None
    return Endpoint(
        model.name, Path(model.gguf), port, model.n_ctx, template.source, model.system_prompt
    )


def check_port(port: int) -> None:
    """Fail now, clearly, if another program holds the port (uvicorn would only log it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {HOST}:{port}: {exc.strerror or exc}",
                hint="pick another port with --port",
            ) from None


def chat_formatter(point: Endpoint, info: GGUFInfo) -> Any:
    """A llama-cpp-python chat formatter rendering requests with the run's template."""
    from llama_cpp.llama_chat_format import ChatFormatterResponse

    from labdesk.models.chat_template import ChatTemplate

    template = ChatTemplate.for_gguf(info, point.chat_template)
    stop = list(template.stop)
    # A template that writes the BOS text itself must not get a second BOS from the tokenizer.
    writes_bos = "bos_token" in point.chat_template

    def format_messages(*, messages: list[dict[str, Any]], **_: Any) -> Any:
        turns = [{"role": m["role"], "content": _text(m.get("content"))} for m in messages]
        if point.system_prompt and not any(t["role"] == "system" for t in turns):
            turns.insert(0, {"role": "system", "content": point.system_prompt})
        prompt = template.render(turns, add_generation_prompt=True)
        return ChatFormatterResponse(prompt=prompt, stop=stop, added_special=writes_bos)

    return format_messages


def _text(content: Any) -> str:
    """OpenAI message content: a string, or a list of parts of which the text ones count."""
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def serve(
    point: Endpoint, *, n_gpu_layers: int | str = "auto", n_threads: int | None = None
) -> None:
    """Serve `point` until interrupted (Ctrl-C); refuses first if the model will not fit."""
    import uvicorn
    from llama_cpp.llama_chat_format import register_chat_format
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from labdesk.memory import check_fits, plan_llama
    from labdesk.models.engine import resolve_gpu_layers
    from labdesk.models.ggufinfo import read_gguf

    check_port(point.port)
    info = read_gguf(point.gguf)
    layers = resolve_gpu_layers(n_gpu_layers)
    plan = plan_llama(info, n_ctx_total=point.n_ctx, n_batch=_N_BATCH, gpu_layers=layers)
    check_fits(plan, where=str(point.gguf))
    format_name = f"labdesk:{point.name}"
    register_chat_format(format_name)(chat_formatter(point, info))
    options: dict[str, Any] = {
        "model": str(point.gguf),
        "model_alias": point.name,
        "n_ctx": point.n_ctx,
        "n_batch": _N_BATCH,
        "n_gpu_layers": layers,
        "chat_format": format_name,
        "verbose": False,
    }
    if n_threads:
        options |= {"n_threads": n_threads, "n_threads_batch": n_threads}
    model = ModelSettings(**options)
    app = create_app(
        server_settings=ServerSettings(host=HOST, port=point.port), model_settings=[model]
    )
    uvicorn.run(app, host=HOST, port=point.port, log_level="warning")
