"""A teacher or judge behind an OpenAI-compatible server (vLLM, llama.cpp's server,
llama-cpp-python's server), with the same interface as the in-process `Engine`.

Prompts are rendered here with the model's chat template and sent as text to `/completions`,
because the judges score text: a reply's log-probabilities come from the same endpoint with
`echo` and `logprobs`, which chat completions cannot give (`can_score` says whether the server
gives usable ones; where not, the judges ask for verdicts instead). Requests run `concurrency`
at a time; a refused connection, a timeout, a 429 or a 5xx is tried again after a doubling wait,
and a reply that breaks its request's schema or pattern is asked again with another seed. The API key
is read from the environment variable the recipe names, at start, and kept in memory only.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import lru_cache
from typing import Any

import numpy as np

from labdesk.errors import Cancelled, ModelError
from labdesk.models.chat_template import ChatTemplate, ChatTemplated, reply_request
from labdesk.models.kvcache import common_len
from labdesk.models.types import FinishReason, GenRequest, GenResult, ScoreRequest, ScoreResult
from labdesk.recipes import ModelRef, RemoteSettings

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_FIRST_WAIT_S = 1.0
_ALIGNED_MEAN = -3.0
"""Mean log-probability per token above which `can_score` trusts the echo."""
_PLAIN_SAMPLING = {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
"""Temperature and top-p only, as the engine samples: llama-cpp-python's server would otherwise
add top-k 40, min-p 0.05 and a 1.1 repeat penalty (greedy replies would differ)."""
_TOKENIZE_ROUTES = ("/extras/tokenize", "/tokenize")
"""llama-cpp-python's server, then llama.cpp's and vLLM's."""


class _Retryable(Exception):
    """A failure worth another try (the server is busy, restarting or unreachable)."""

    def __init__(self, why: str, status: int | None = None) -> None:
        super().__init__(why)
        self.status = status


class Server:
    """HTTP to one OpenAI-compatible endpoint: JSON in, JSON out, retried as the recipe says."""

    def __init__(self, url: str, api_key: str | None, settings: RemoteSettings) -> None:
        self.url = url.rstrip("/")
        self.root = re.sub(r"/v\d+$", "", self.url)
        """The server's own routes (tokenize, props) live beside /v1, not under it."""
        self.settings = settings
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def get(self, route: str, *, base: str | None = None) -> Any:
        return self._call("GET", (base or self.url) + route, None)

    def post(self, route: str, body: dict[str, Any], *, base: str | None = None) -> Any:
        return self._call("POST", (base or self.url) + route, body)

    def _call(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        wait_s = _FIRST_WAIT_S
        for attempt in range(self.settings.retries + 1):
            try:
                return self._once(method, url, body)
            except _Retryable as exc:
                if attempt == self.settings.retries and exc.status is not None:
                    raise HTTPRefused(exc.status, str(exc), url, None) from None
                if attempt == self.settings.retries:
                    raise ModelError(
                        f"the server did not answer after {attempt + 1} tries: {exc}",
                        where=url,
                        hint="is the server running and reachable from here? (remote.retries "
                        "and remote.timeout_s set how long labdesk waits)",
                    ) from None
                time.sleep(wait_s)
                wait_s *= 2
        raise AssertionError("unreachable")

    def _once(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:500]
            if exc.code in _RETRY_STATUS:
                raise _Retryable(detail, exc.code) from None
            hints = {
                401: "the server wants an API key: set `api_key_env` on the model in the recipe "
                "and put the key in that environment variable",
                403: "the API key was refused: check the environment variable `api_key_env` names",
                404: "no such route: is the endpoint's URL right (it usually ends in /v1)?",
            }
            raise HTTPRefused(exc.code, detail, url, hints.get(exc.code)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise _Retryable(str(getattr(exc, "reason", exc))) from None
        except json.JSONDecodeError:
            raise ModelError("the server's reply is not JSON", where=url) from None


class HTTPRefused(ModelError):
    """The server answered with an error that another try will not change."""

    def __init__(self, status: int, detail: str, url: str, hint: str | None) -> None:
        super().__init__(
            f"the server refused the request: HTTP {status} {detail}", where=url, hint=hint
        )
        self.status = status


class RemoteModel(ChatTemplated):
    """The `TextModel` of generation, over an endpoint (see the module's docstring)."""

    def __init__(
        self, server: Server, model: str, template: ChatTemplate, n_ctx: int, served_as: str
    ) -> None:
        self.server = server
        self.model = model
        self.template = template
        self.n_ctx = n_ctx
        self.served_as = served_as
        """The model's id as the server lists it: part of the run's record of its teacher."""
        self._tokenize_route: str | None = None
        self._checked = False
        self._why_not: NoPromptScores | None = None
        """Why the server's echoed log-probabilities are not usable (see `can_score`)."""
        self.count_tokens = lru_cache(maxsize=4096)(self._count_tokens)

    @classmethod
    def open(cls, ref: ModelRef, settings: RemoteSettings, n_ctx: int) -> RemoteModel:
        """Connect, check the server serves `ref.model`, and find its chat template."""
        assert ref.endpoint is not None and ref.model is not None
        server = Server(ref.endpoint, _api_key(ref), settings)
        listed = server.get("/models").get("data") or []
        ids = [str(m.get("id")) for m in listed if isinstance(m, dict)]
        served = _served_id(ref.model, ids)
        if served is None:
            raise ModelError(
                f"the server does not serve a model named '{ref.model}'",
                where=server.url,
                hint=f"set `model:` to one it lists: {', '.join(ids) or '(none listed)'}",
            )
        source, bos, eos = ref.chat_template, "", ""
        if source is None:
            source, bos, eos = _published_template(server)
        template = ChatTemplate(source, bos_token=bos, eos_token=eos, model=ref.label())
        template.stop  # noqa: B018 - a missing or broken template fails now, clearly
        return cls(server, ref.model, template, n_ctx, served)

    # -- the TextModel interface ---------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """The server's own token ids for `text` (special tokens parsed, no BOS added)."""
        body: dict[str, Any] = {"model": self.model, "input": text, "content": text}
        body |= {"prompt": text, "add_special": False, "add_special_tokens": False}
        routes = [self._tokenize_route] if self._tokenize_route else _TOKENIZE_ROUTES
        for route in routes:
            try:
                tokens = self.server.post(route, body, base=self.server.root)["tokens"]
            except HTTPRefused as exc:
                if exc.status not in (404, 405):
                    raise
                if route != routes[-1]:
                    continue
                raise ModelError(
                    "the server cannot count tokens (no tokenize route): labdesk needs it to "
                    "fit prompts to the context and to score replies",
                    where=self.server.url,
                    hint="serve the model with vLLM, llama.cpp's llama-server or "
                    "llama-cpp-python's server, or use it as a GGUF file here",
                ) from None
            self._tokenize_route = route
            return [int(t["id"]) if isinstance(t, dict) else int(t) for t in tokens]
        raise AssertionError("unreachable")

    def _count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def generate(
        self,
        requests: Sequence[GenRequest],
        *,
        on_result: Callable[[int, GenResult], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenResult]:
        """Every request, `concurrency` in flight; `on_result` runs on the caller's thread."""
        results: list[GenResult] = [GenResult("", 0, 0, "cancelled") for _ in range(len(requests))]

        def finished(index: int, result: GenResult) -> None:
            results[index] = result
            if on_result is not None:
                on_result(index, result)

        self._run(self._complete, list(requests), finished, cancel)
        return results

    def score(
        self, requests: Sequence[ScoreRequest], *, cancel: threading.Event | None = None
    ) -> list[ScoreResult]:
        if requests and not self.can_score():
            assert self._why_not is not None
            raise self._why_not
        scored: list[ScoreResult | None] = [None] * len(requests)

        def finished(index: int, result: ScoreResult) -> None:
            scored[index] = result

        self._run(self._score, list(requests), finished, cancel)
        if any(s is None for s in scored):
            raise Cancelled("scoring stopped; run again to resume")
        return [s for s in scored if s is not None]

    def can_score(self) -> bool:
        """Whether the server echoes usable log-probabilities of a prompt, checked once.

        Score a reply any language model finds easy, formatted as the judges format theirs.
        Some servers echo the numbers one token off (llama-cpp-python's, for a text that does
        not begin with the BOS token): each is then that of a token repeating, and the judges
        would decide on noise. Measured by this check on SmolLM2-135M: -0.14 nats per token
        lined up, -13.9 one off.
        """
        if self._checked:
            return self._why_not is None
        messages = [{"role": "user", "content": "Count from 1 to 12, separated by commas."}]
        probe = reply_request(self, messages, "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12")
        try:
            result = self._score(probe)
        except HTTPRefused as exc:  # e.g. llama-cpp-python's server without logits_all
            self._why_not = _no_logprobs(self.server.url, exc.message)
        except NoPromptScores as exc:
            self._why_not = exc
        else:
            mean = result.total / max(1, len(result.logprobs))
            if mean < _ALIGNED_MEAN:
                self._why_not = NoPromptScores(
                    f"the server's log-probabilities do not line up with the text's tokens "
                    f"(counting to 12 scored {mean:.1f} nats per token, where any model gives "
                    f"above {_ALIGNED_MEAN}); labdesk's judges would decide on noise",
                    where=self.server.url,
                    hint="serve the judge with vLLM, or judge with a GGUF here; "
                    "llama-cpp-python's server lines them up only when the chat template "
                    "begins with the BOS token",
                )
        self._checked = True
        return self._why_not is None

    def close(self) -> None:
        """Nothing is held here: the server keeps the model."""

    # -- one request -----------------------------------------------------------------------------

    def _complete(self, request: GenRequest) -> GenResult:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            **_PLAIN_SAMPLING,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        body |= _constraint(request)
        seed = request.seed
        for _ in range(self.server.settings.retries + 1):
            if seed is not None:
                body["seed"] = seed
            reply = self.server.post("/completions", body)
            result = _gen_result(reply)
            if request.schema is None and request.pattern is None:
                return result
            checked = _checked(request, result)
            if checked is not None:
                return checked
            seed = (seed or 0) + 1  # greedy or sampled, another seed is another chance
        return result  # still off its schema: the caller sees `value` None, as with a cut reply

    def _score(self, request: ScoreRequest) -> ScoreResult:
        whole = request.prompt + request.continuation
        prompt_ids, whole_ids = self.tokenize(request.prompt), self.tokenize(whole)
        shared = common_len(np.array(prompt_ids), np.array(whole_ids), len(whole_ids))
        if shared == len(whole_ids) and shared > 0:
            shared -= 1  # an empty continuation still scores the token that ends the text
        wanted = len(whole_ids) - shared
        body = {
            "model": self.model,
            "prompt": whole,
            "max_tokens": 1,
            "temperature": 0.0,
            "echo": True,
            "logprobs": 1,
        }
        reply = self.server.post("/completions", body)
        logprobs = (reply.get("choices") or [{}])[0].get("logprobs") or {}
        values = logprobs.get("token_logprobs") or []
        offsets = logprobs.get("text_offset") or [0] * len(values)
        # The echo lists the text's tokens, then (vLLM) the one generated token, which starts
        # where the text ends; the continuation's tokens are the last `wanted` of the text's.
        echoed = [v for v, at in zip(values, offsets, strict=False) if at < len(whole)]
        found = echoed[-wanted:]
        if len(found) < wanted or any(v is None for v in found):
            raise _no_logprobs(self.server.url, "the reply has no log-probability per token")
        return ScoreResult(whole_ids[shared:], [float(v) for v in found], shared)

    def _run(
        self,
        work: Callable[[Any], Any],
        items: list[Any],
        finished: Callable[[int, Any], None],
        cancel: threading.Event | None,
    ) -> None:
        """`work` on every item in a thread pool; results reach `finished` on this thread."""
        if not items:
            return
        pool = ThreadPoolExecutor(min(self.server.settings.concurrency, len(items)))
        try:
            pending: dict[Future[Any], int] = {
                pool.submit(work, item): i for i, item in enumerate(items)
            }
            while pending:
                if cancel is not None and cancel.is_set():
                    return
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    finished(pending.pop(future), future.result())
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


# -- helpers -----------------------------------------------------------------------------------


def _api_key(ref: ModelRef) -> str | None:
    if ref.api_key_env is None:
        return None
    key = os.environ.get(ref.api_key_env)
    if not key:
        raise ModelError(
            f"the environment variable {ref.api_key_env} holding the API key is not set",
            where=ref.label(),
            hint=f"export {ref.api_key_env}=... before running (the recipe names it in "
            "`api_key_env`; the key is never written to the recipe or the run)",
        )
    return key


def _served_id(name: str, ids: list[str]) -> str | None:
    """The listed id that is `name` (or ends in it: llama-cpp-python's server lists a model by
    its file's path); a server that lists nothing is taken at its word."""
    if not ids:
        return name
    return next((i for i in ids if i == name or i.rsplit("/", 1)[-1] == name), None)


def _published_template(server: Server) -> tuple[str, str, str]:
    """The chat template a server publishes (llama.cpp's `/props`), with BOS and EOS text."""
    try:
        props = server.get("/props", base=server.root)
    except HTTPRefused:
        props = {}
    template = props.get("chat_template") if isinstance(props, dict) else None
    if not template:
        raise ModelError(
            "the server does not publish the model's chat template",
            where=server.url,
            hint="set `chat_template:` on the model in the recipe to its Jinja template (the "
            "model card or its tokenizer_config.json has it)",
        )
    # llama.cpp's server adds BOS itself: the template must not write it a second time.
    return str(template), "", str(props.get("eos_token") or "")


def _constraint(request: GenRequest) -> dict[str, Any]:
    """The request's output constraint, in the forms servers understand: a GBNF grammar
    (llama.cpp's server, llama-cpp-python's) and a JSON schema (llama.cpp's `json_schema`,
    vLLM's and OpenAI's `response_format`). Replies are validated here whatever the server did.
    """
    from labdesk.models.grammar import pattern_to_gbnf, schema_to_gbnf

    if request.schema is not None:
        return {
            "grammar": schema_to_gbnf(request.schema),
            "json_schema": request.schema,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "reply", "schema": request.schema},
            },
        }
    if request.pattern is not None:
        return {"grammar": pattern_to_gbnf(request.pattern)}
    return {}


def _gen_result(reply: dict[str, Any]) -> GenResult:
    choice = (reply.get("choices") or [{}])[0]
    usage = reply.get("usage") or {}
    reason: FinishReason = "length" if choice.get("finish_reason") == "length" else "stop"
    return GenResult(
        str(choice.get("text") or ""),
        int(usage.get("completion_tokens") or 0),
        int(usage.get("prompt_tokens") or 0),
        reason,
    )


def _checked(request: GenRequest, result: GenResult) -> GenResult | None:
    """`result` with its parsed value when it meets the request's schema or pattern."""
    if request.pattern is not None:
        return result if re.fullmatch(request.pattern, result.text) else None
    import jsonschema

    try:
        value = json.loads(result.text)
        jsonschema.validate(value, request.schema or {})
    except (json.JSONDecodeError, jsonschema.ValidationError):
        return None
    return GenResult(result.text, result.tokens, result.prompt_tokens, result.finish_reason, value)


class NoPromptScores(ModelError):
    """The server cannot give (usable) log-probabilities of a prompt's tokens."""


def _no_logprobs(url: str, why: str) -> NoPromptScores:
    return NoPromptScores(
        f"the server gives no log-probabilities of a prompt's tokens ({why}); labdesk's judges "
        "score replies with them",
        where=url,
        hint="judge with a GGUF here (`judge:` with `package`, `repo` or `path`), or serve the "
        "judge with vLLM or llama-cpp-python's server (which return them with echo)",
    )
