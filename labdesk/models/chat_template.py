"""Chat templates, one module for every model role: teacher, judge, student, export and chat.

A model's Jinja template (GGUF `tokenizer.chat_template`, or the recipe's override) renders
messages to a prompt (`ChatTemplate`, run in Jinja's immutable sandbox because templates come
from model files). Where a GGUF carries no template, a family whose template is known by name
(InstructLab's LAB models) gets it; any other model without one is an error that says how to
give one, never a silent guess. `derive_chat_format` reads a template from outside: the text
around each role, from which come the stop strings and an Ollama template.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any, Protocol

from labdesk.errors import ModelError
from labdesk.models.types import ScoreRequest

if TYPE_CHECKING:
    from labdesk.models.ggufinfo import GGUFInfo

# The InstructLab LAB models' template (granite-7b-lab / merlinite): role headers on their own
# line, an assistant turn ends with <|endoftext|>.
LAB_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' + message['content'] + '<|endoftext|>' + ('' if loop.last else '\n') }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)


# Model families whose GGUFs are often published without a template, matched on the GGUF's
# `general.name` / `general.basename` (lower case).
_FAMILY_TEMPLATES: dict[str, str] = {
    "merlinite": LAB_CHAT_TEMPLATE,
    "granite-7b-lab": LAB_CHAT_TEMPLATE,
    "labradorite": LAB_CHAT_TEMPLATE,
}


def family_template(name: str | None) -> str | None:
    """The known template of a model family, from the model's name in its GGUF."""
    lowered = (name or "").lower()
    return next((t for key, t in _FAMILY_TEMPLATES.items() if key in lowered), None)


@cache
def _sandbox() -> Any:
    """Jinja's immutable sandbox with the helpers Hugging Face templates call."""
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(f"the template refused the messages: {message}")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


class ChatTemplate:
    """Renders messages with one model's template; `source=None` fails when first used."""

    def __init__(
        self, source: str | None, *, bos_token: str, eos_token: str, model: str = "the model"
    ) -> None:
        self.source = source
        self.model = model
        self._specials: dict[str, Any] = {"bos_token": bos_token, "eos_token": eos_token}

    @classmethod
    def for_gguf(cls, info: GGUFInfo, override: str | None = None) -> ChatTemplate:
        """The recipe's override, else the GGUF's own template, else its family's."""
        source = override or info.chat_template or family_template(info.name)
        return cls(
            source,
            bos_token=info.bos_token or "",
            eos_token=info.eos_token or "",
            model=str(info.path),
        )

    @cached_property
    def _compiled(self) -> Any:
        from jinja2 import TemplateError

        if self.source is None:
            raise ModelError(
                "this model has no chat template, and its family's is not known",
                where=self.model,
                hint="set `engine.chat_template` in the recipe to the model's Jinja template "
                "(its model card shows the prompt format)",
            )
        try:
            return _sandbox().from_string(self.source)
        except TemplateError as exc:
            raise ModelError(
                f"chat template is not valid Jinja: {exc}",
                where=self.model,
                hint="fix engine.chat_template in the recipe, or remove it to use the model's",
            ) from None

    def render(self, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
        from jinja2 import TemplateError

        template = self._compiled
        try:
            return str(
                template.render(
                    messages=messages, add_generation_prompt=add_generation_prompt, **self._specials
                )
            )
        except TemplateError as exc:
            raise ModelError(f"chat template failed: {exc}", where=self.model) from None

    @cached_property
    def format(self) -> ChatFormat:
        self._compiled  # noqa: B018 - a missing template raises its clear error first
        assert self.source is not None
        return derive_chat_format(self.source, eos_token=self._specials["eos_token"])

    @property
    def stop(self) -> tuple[str, ...]:
        """Strings that end an assistant answer in this template."""
        return self.format.stop


class ChatTemplated:
    """A model that renders chats with its `template` (the engine, a model behind a server)."""

    template: ChatTemplate

    @property
    def stop(self) -> tuple[str, ...]:
        """Strings that end an assistant turn in this model's chat template."""
        return self.template.stop

    def chat_prompt(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        """`messages` rendered with the model's chat template (or the recipe's override)."""
        return self.template.render(messages, add_generation_prompt=add_generation_prompt)


class ChatRenderer(Protocol):
    def chat_prompt(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str: ...


def reply_request(model: ChatRenderer, messages: list[dict[str, str]], reply: str) -> ScoreRequest:
    """How likely `reply` is as the assistant's next turn, its end-of-turn marker included."""
    prompt = model.chat_prompt(messages)
    whole = model.chat_prompt([*messages, {"role": "assistant", "content": reply}], False)
    if not whole.startswith(prompt):  # a template that rewrites earlier turns: score the text
        return ScoreRequest(prompt, reply)
    return ScoreRequest(prompt, whole[len(prompt) :])


_SYS, _USR, _ASST = "\x01SYSTEM\x01", "\x01USER\x01", "\x01ASSISTANT\x01"


@dataclass(frozen=True)
class ChatFormat:
    """The text a template puts around each role (system parts empty if it has no system role)."""

    system_prefix: str
    system_suffix: str
    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str

    @property
    def supports_system(self) -> bool:
        return bool(self.system_prefix or self.system_suffix)

    @property
    def stop(self) -> tuple[str, ...]:
        """Strings that end an answer: the end-of-turn marker, and the next turn's header."""
        candidates = (self.assistant_suffix.strip(), self.user_prefix.strip())
        return tuple(dict.fromkeys(c for c in candidates if c))

    def go_template(self) -> str:
        """The same layout as an Ollama (Go text/template) TEMPLATE, one exchange per render."""
        system = ""
        if self.supports_system:
            system = (
                f"{{{{ if .System }}}}{self.system_prefix}{{{{ .System }}}}"
                f"{self.system_suffix}{{{{ end }}}}"
            )
        return (
            f"{system}{{{{ if .Prompt }}}}{self.user_prefix}{{{{ .Prompt }}}}"
            f"{self.user_suffix}{{{{ end }}}}{self.assistant_prefix}{{{{ .Response }}}}"
            f"{self.assistant_suffix}"
        )


def _render(
    template: str, messages: list[dict[str, str]], add_generation_prompt: bool, **tokens: str
) -> str:
    return str(
        _sandbox()
        .from_string(template)
        .render(messages=messages, add_generation_prompt=add_generation_prompt, **tokens)
    )


def derive_chat_format(template: str, *, eos_token: str = "") -> ChatFormat:
    """Cut `template` (Jinja, as in a GGUF or tokenizer_config) into a `ChatFormat`.

    The BOS token renders as empty: llama.cpp and Ollama add it when tokenizing.
    """
    from jinja2 import TemplateError

    tokens = {"bos_token": "", "eos_token": eos_token}
    user_only = [{"role": "user", "content": _USR}]
    try:
        asked = _render(template, user_only, True, **tokens)
        answered = _render(
            template, [*user_only, {"role": "assistant", "content": _ASST}], False, **tokens
        )
    except TemplateError as exc:
        raise ModelError(
            f"the model's chat template cannot be rendered: {exc}",
            hint="set `engine.chat_template` in the recipe to a working Jinja template",
        ) from None
    if _USR not in asked or _ASST not in answered:
        raise ModelError(
            "the model's chat template does not render user and assistant messages",
            hint="set `engine.chat_template` in the recipe to a working Jinja template",
        )
    user_prefix, _, after_user = asked.partition(_USR)
    # Without the generation prompt the user turn ends with its own suffix; what the generation
    # prompt adds beyond that is the assistant header.
    user_suffix = _render(template, user_only, False, **tokens).partition(_USR)[2]
    if not after_user.startswith(user_suffix):
        user_suffix = ""
    assistant_prefix = after_user[len(user_suffix) :]
    assistant_suffix = answered.partition(_ASST)[2]

    system_prefix = system_suffix = ""
    try:
        with_system = _render(
            template, [{"role": "system", "content": _SYS}, *user_only], True, **tokens
        )
    except TemplateError:
        with_system = ""  # templates without a system role raise; the model then has none
    if _SYS in with_system and _USR in with_system:
        system_prefix, _, rest = with_system.partition(_SYS)
        between = rest.partition(_USR)[0]
        # What separates the system text from the user text ends with the user's own header.
        system_suffix = (
            between[: len(between) - len(user_prefix)] if between.endswith(user_prefix) else between
        )
    return ChatFormat(
        system_prefix=system_prefix,
        system_suffix=system_suffix,
        user_prefix=user_prefix,
        user_suffix=user_suffix,
        assistant_prefix=assistant_prefix,
        assistant_suffix=assistant_suffix,
    )
