"""`labdesk serve RUN`: llama-cpp-python's server on 127.0.0.1 serving the run's exported GGUF,
reached over real HTTP as any OpenAI client would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labdesk.fileio import write_json
from labdesk.models.engine import Engine
from labdesk.models.types import GenRequest
from labdesk.recipes import EngineSettings
from tests.evaluate.planted import SYSTEM
from tests.export_run.conftest import Exported

QUESTION = "Where does Sue live?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "LABDESK_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "labdesk", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _call(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        result: dict[str, Any] = json.load(response)
        return result


@pytest.fixture(scope="module")
def server(exported: Exported) -> Iterator[str]:
    """`labdesk serve lily` on a free port, as the run recorded its recipe; yields its base URL."""
    write_json(exported.run.recipe, exported.recipe.model_dump(mode="json"))
    port = _free_port()
    proc = _serve(exported.ws.home, "lily", "--port", str(port))
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _call(f"{base}/models")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    pytest.fail(f"the server did not come up: {proc.communicate()[1][-2000:]}")
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _local_answer(exported: Exported, messages: list[dict[str, str]]) -> tuple[int, str]:
    """Prompt tokens and greedy answer from labdesk's own engine on the same GGUF."""
    model = exported.model
    engine = Engine.load(Path(model.gguf), EngineSettings(n_ctx=model.n_ctx, parallel=1))
    try:
        prompt = engine.chat_prompt(messages)
        (result,) = engine.generate(
            [GenRequest(prompt, 16, temperature=0.0, stop=engine.template.stop)]
        )
        return engine.count_tokens(prompt), result.text
    finally:
        engine.close()


def test_a_chat_completion_over_http_answers_with_the_runs_template_and_system_prompt(
    server: str, exported: Exported
) -> None:
    (listed,) = _call(f"{server}/models")["data"]
    assert listed["id"] == "lily"
    body = {
        "model": "lily",
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 16,
        "temperature": 0,
        "repeat_penalty": 1.0,
    }
    reply = _call(f"{server}/chat/completions", body)
    # the run's system prompt was put in front, in the run's template: same prompt, same answer
    tokens, answer = _local_answer(
        exported, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    )
    assert reply["usage"]["prompt_tokens"] == tokens
    assert answer.strip() and reply["choices"][0]["message"]["content"] == answer
    assert reply["model"] == "lily"


def test_a_clients_own_system_prompt_replaces_the_runs(server: str, exported: Exported) -> None:
    mine = [{"role": "system", "content": "Be short."}, {"role": "user", "content": QUESTION}]
    body = {"messages": mine, "max_tokens": 16, "temperature": 0, "repeat_penalty": 1.0}
    reply = _call(f"{server}/chat/completions", body)
    tokens, answer = _local_answer(exported, mine)
    assert reply["usage"]["prompt_tokens"] == tokens
    assert reply["choices"][0]["message"]["content"] == answer


def test_serving_a_run_that_was_never_exported_says_what_to_do(exported: Exported) -> None:
    proc = _serve(exported.ws.home, "nothing-here", "--port", str(_free_port()))
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in err and "there is no run `nothing-here` (runs: lily)" in err


def test_a_port_in_use_is_a_clear_error(exported: Exported) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = _serve(exported.ws.home, "lily", "--port", str(taken.getsockname()[1]))
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in err and "--port" in err
