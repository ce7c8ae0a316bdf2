from __future__ import annotations

import pytest

from labdesk.errors import ModelError
from labdesk.models.chat_template import LAB_CHAT_TEMPLATE, ChatTemplate, derive_chat_format

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Like Llama 3's: BOS text first, header tokens, and an end-of-turn token after every message.
LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
# No system role at all (Gemma-style): it raises on one.
NO_SYSTEM = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}"
    "{% endif %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _go_render(go: str, system: str, prompt: str, response: str) -> str:
    """Expand the three Go-template forms we emit (enough to compare with the Jinja output)."""
    import re

    def cond(match: re.Match[str]) -> str:
        value = {"System": system, "Prompt": prompt}[match.group(1)]
        return match.group(2) if value else ""

    text = re.sub(r"\{\{ if \.(\w+) \}\}(.*?)\{\{ end \}\}", cond, go, flags=re.S)
    for name, value in (("System", system), ("Prompt", prompt), ("Response", response)):
        text = text.replace(f"{{{{ .{name} }}}}", value)
    return text


@pytest.mark.parametrize(
    ("template", "stop"),
    [
        (LAB_CHAT_TEMPLATE, ("<|endoftext|>", "<|user|>")),
        (CHATML, ("<|im_end|>", "<|im_start|>user")),
        (LLAMA3, ("<|eot_id|>", "<|start_header_id|>user<|end_header_id|>")),
    ],
)
def test_go_template_renders_what_the_jinja_template_does(
    template: str, stop: tuple[str, ...]
) -> None:
    fmt = derive_chat_format(template, eos_token="</s>")
    assert fmt.stop == stop
    jinja = ChatTemplate(template, bos_token="", eos_token="</s>")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi?"},
        {"role": "assistant", "content": "Hello."},
    ]
    expected = jinja.render(messages, add_generation_prompt=False)
    assert _go_render(fmt.go_template(), "Be brief.", "Hi?", "Hello.") == expected


def test_a_template_without_system_role_gives_a_format_without_one() -> None:
    fmt = derive_chat_format(NO_SYSTEM)
    assert not fmt.supports_system
    assert "{{ .System }}" not in fmt.go_template()
    assert fmt.stop == ("<end_of_turn>", "<start_of_turn>user")


def test_a_template_that_renders_nothing_useful_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="does not render"):
        derive_chat_format("{{ 'static text' }}")
