"""Chat formatting with the model's own Jinja template (GGUF `tokenizer.chat_template`).

Templates come from model files, so they run in Jinja's immutable sandbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from labdesk.errors import ModelError

# Used only when neither the GGUF nor the recipe has a template (e.g. base models): ChatML.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _raise(message: str) -> None:
    raise ModelError(f"chat template refused the messages: {message}")


class ChatTemplate:
    def __init__(self, source: str | None, *, bos_token: str, eos_token: str) -> None:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        self.source = source or FALLBACK_TEMPLATE
        try:
            self._template = env.from_string(self.source)
        except TemplateError as exc:
            raise ModelError(
                f"chat template is not valid Jinja: {exc}",
                hint="fix engine.chat_template in the recipe, or remove it to use the model's",
            ) from None
        self._specials: dict[str, Any] = {"bos_token": bos_token, "eos_token": eos_token}

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
        from jinja2 import TemplateError

        try:
            return self._template.render(
                messages=messages, add_generation_prompt=add_generation_prompt, **self._specials
            )
        except TemplateError as exc:
            raise ModelError(f"chat template failed: {exc}") from None
