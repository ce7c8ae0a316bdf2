from __future__ import annotations

import pytest

from labdesk.errors import ModelError
from labdesk.export.modelfile import render_modelfile
from labdesk.models.chat_template import LAB_CHAT_TEMPLATE, derive_chat_format


def test_modelfile_carries_template_system_stops_and_parameters() -> None:
    fmt = derive_chat_format(LAB_CHAT_TEMPLATE)
    text = render_modelfile("m-q4_k_m.gguf", fmt, 'Say "hi".', temperature=0.2, num_ctx=2048)
    lines = text.splitlines()
    assert lines[1] == "FROM ./m-q4_k_m.gguf"
    assert "<|assistant|>\n{{ .Response }}<|endoftext|>" in text
    assert 'SYSTEM """Say "hi"."""' in lines
    assert 'PARAMETER stop "<|endoftext|>"' in lines
    assert "PARAMETER temperature 0.2" in lines and "PARAMETER num_ctx 2048" in lines


def test_text_that_cannot_be_quoted_in_a_modelfile_is_refused() -> None:
    with pytest.raises(ModelError, match="cannot quote"):
        render_modelfile("m.gguf", derive_chat_format(LAB_CHAT_TEMPLATE), 'a """ b')
