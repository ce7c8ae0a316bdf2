"""llama.cpp's own C++ tools as the yardstick: `llama-server` with N slots and
`llama-batched-bench`, on the same GGUF labdesk runs.

Build them once, outside the repository, from the llama.cpp sources that llama-cpp-python's
source distribution carries (so they are the very llama.cpp labdesk's binding runs); about 25
minutes on 2 cores:

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/llbuild
    tar xzf /tmp/llbuild/llama_cpp_python-0.3.36.tar.gz -C /tmp/llbuild
    cmake -S /tmp/llbuild/llama_cpp_python-0.3.36/vendor/llama.cpp -B /tmp/llbuild/build \\
        -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_CURL=OFF
    nice -n 15 cmake --build /tmp/llbuild/build -j2 --target llama-server llama-batched-bench
    mkdir -p /work/llama-cpp-bin && cp -a /tmp/llbuild/build/bin/. /work/llama-cpp-bin/

and give the benchmarks `--llama-cpp-bin /work/llama-cpp-bin`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from labdesk.models.sampling import request_grammar
from labdesk.models.types import FinishReason, GenRequest, GenResult, ScoreRequest, ScoreResult


def _env(binary: Path) -> dict[str, str]:
    """The environment to run a tool in: its folder's shared libraries first (a build's
    RUNPATH names the build tree, which may be gone once the tools are copied out)."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(binary.parent), env.get("LD_LIBRARY_PATH", "")) if p
    )
    return env


def tool(bin_dir: Path | None, name: str) -> Path | None:
    """The built tool `name` in `bin_dir`, or None."""
    if bin_dir is None:
        return None
    path = bin_dir / name
    return path if path.is_file() else None


class CppServer:
    """`llama-server` on 127.0.0.1 with `slots` slots of `n_ctx` tokens each."""

    def __init__(self, binary: Path, gguf: Path, *, slots: int, n_ctx: int, threads: int) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        command = [
            str(binary),
            *("-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port)),
            *("-np", str(slots), "-c", str(n_ctx * slots), "-t", str(threads)),
            *("-tb", str(threads), "--no-webui", "--log-disable"),
        ]
        self.slots = slots
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(binary)
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited: {self.process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(self._url("/health"), timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.close()
        raise RuntimeError("llama-server did not become ready in 120 s")

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def cpu_seconds(self) -> float:
        """CPU seconds the server process has used (all its threads)."""
        import psutil

        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def complete(self, request: GenRequest) -> dict[str, Any]:
        """One request through `/completion`, sampled as labdesk samples it (no top-k or
        min-p; the request's grammar, temperature, top-p and seed)."""
        payload: dict[str, Any] = {
            "prompt": request.prompt,
            "n_predict": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "top_k": 0,
            "min_p": 0.0,
            "seed": -1 if request.seed is None else request.seed & 0xFFFFFFFF,
            "stop": list(request.stop),
            "cache_prompt": True,
        }
        grammar = request_grammar(request)
        if grammar is not None:
            payload["grammar"] = grammar
        data = json.dumps(payload).encode()
        post = urllib.request.Request(
            self._url("/completion"), data, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(post, timeout=3600) as reply:
            return json.loads(reply.read())

    def run(
        self,
        requests: Sequence[GenRequest],
        on_result: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Every request, `slots` at a time (each client thread waits on its own reply)."""
        lock = threading.Lock()

        def one(index: int) -> dict[str, Any]:
            reply = self.complete(requests[index])
            if on_result is not None:
                with lock:
                    on_result(index, reply)
            return reply

        with ThreadPoolExecutor(self.slots) as pool:
            return list(pool.map(one, range(len(requests))))

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def gen_result(request: GenRequest, reply: dict[str, Any]) -> GenResult:
    """A `/completion` reply as labdesk's GenResult."""
    text = str(reply["content"])
    reason: FinishReason = "length" if reply.get("stop_type") == "limit" else "stop"
    value = None
    if request.schema is not None:
        try:
            value = json.loads(text)
            reason = "stop"
        except ValueError:
            value = None
    return GenResult(
        text, int(reply["tokens_predicted"]), int(reply["tokens_evaluated"]), reason, value
    )


class EnginePrompts:
    """A baseline teacher whose prompts are formatted and counted with the labdesk engine's
    template and tokenizer, so every run sends byte-identical prompts."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.n_ctx: int = engine.n_ctx

    def chat_prompt(
        self, messages: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return self.engine.chat_prompt(messages, add_generation_prompt)

    def count_tokens(self, text: str) -> int:
        return self.engine.count_tokens(text)

    @property
    def stop(self) -> tuple[str, ...]:
        return self.engine.stop

    def can_score(self) -> bool:
        return True

    def score(
        self, requests: Sequence[ScoreRequest], *, cancel: threading.Event | None = None
    ) -> list[ScoreResult]:
        """Judging stays in labdesk's engine for every run, so the runs differ only in how
        replies are generated."""
        return self.engine.score(requests, cancel=cancel)


class ServerModel(EnginePrompts):
    """A `llama-server` as the generation pipeline's teacher and judge (labdesk's TextModel):
    decoding, sampling and grammar run in the C++ server."""

    def __init__(self, server: CppServer, engine: Any) -> None:
        super().__init__(engine)
        self.server = server

    def generate(
        self,
        requests: Sequence[GenRequest],
        *,
        on_result: Callable[[int, GenResult], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenResult]:
        def report(index: int, reply: dict[str, Any]) -> None:
            if on_result is not None:
                on_result(index, gen_result(requests[index], reply))

        replies = self.server.run(requests, report)
        return [gen_result(r, reply) for r, reply in zip(requests, replies, strict=True)]


def batched_bench(
    binary: Path, gguf: Path, *, slots: Sequence[int], prompt: int, generated: int, threads: int
) -> dict[int, float]:
    """`llama-batched-bench`: generated tokens/s (its S_TG column, pure decoding: no prompt,
    no sampling) for each number of sequences in `slots`."""
    n_ctx = max(slots) * (prompt + generated) + 64
    command = [
        str(binary),
        *("-m", str(gguf), "-c", str(n_ctx), "-b", "2048", "-ub", "512"),
        *("-npp", str(prompt), "-ntg", str(generated), "-npl", ",".join(map(str, slots))),
        *("-t", str(threads), "-tb", str(threads)),
    ]
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, env=_env(binary)
    ).stdout
    rates = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 9 and re.fullmatch(r"\d+", cells[2]):
            rates[int(cells[2])] = float(cells[7])  # PP, TG, B, N_KV, T_PP, S_PP, T_TG, S_TG
    return rates
