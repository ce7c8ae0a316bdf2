"""What a model's Jinja chat template looks like from outside: turn markers and stop strings.

Rather than recognising template families by name, the template is rendered with sentinel
messages and cut at the sentinels. That yields the exact text around each role, from which we
build an Ollama Go template and the strings that end an answer (the end-of-turn marker and the
next user header), for any template that renders system / user / assistant in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from labdesk.errors import ModelError

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
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, **tokens
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
