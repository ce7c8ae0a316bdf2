"""An Ollama `Modelfile` beside an exported GGUF, so `ollama create NAME -f Modelfile` just works.

The TEMPLATE is the model's own chat template re-expressed as a Go template (see
`labdesk.chat.template`), SYSTEM is the system prompt the model was trained with, and the stop
parameters end an answer at the template's end-of-turn marker.
"""

from __future__ import annotations

import json

from labdesk.errors import ModelError
from labdesk.models.chat_template import ChatFormat


def _block(text: str, what: str) -> str:
    if '"""' in text:
        raise ModelError(
            f'the {what} contains """, which an Ollama Modelfile cannot quote',
            hint=f"remove the triple quotes from the {what}",
        )
    return f'"""{text}"""'


def render_modelfile(
    gguf_name: str,
    chat_format: ChatFormat,
    system_prompt: str,
    *,
    temperature: float | None = None,
    num_ctx: int | None = None,
) -> str:
    """The Modelfile text; `gguf_name` is the GGUF's path relative to the Modelfile."""
    lines = [
        "# Made by labdesk. Create the model with:  ollama create NAME -f Modelfile",
        f"FROM ./{gguf_name}",
        f"TEMPLATE {_block(chat_format.go_template(), 'chat template')}",
    ]
    if system_prompt:
        lines.append(f"SYSTEM {_block(system_prompt, 'system prompt')}")
    lines += [f"PARAMETER stop {json.dumps(stop)}" for stop in chat_format.stop]
    if temperature is not None:
        lines.append(f"PARAMETER temperature {temperature}")
    if num_ctx is not None:
        lines.append(f"PARAMETER num_ctx {num_ctx}")
    return "\n".join(lines) + "\n"
