"""The teacher/judge runtime: one llama.cpp model + context, many sequences decoded together.

`Engine.load(path, settings)` validates the GGUF, checks it fits in memory, and loads it once
per (file, settings): a teacher and a judge that name the same file share one engine. Its
methods lock the context, so threads may share an engine but decode one call at a time.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labdesk.errors import ModelError
from labdesk.memory import MemoryPlan, check_fits, gpu_device, plan_llama
from labdesk.models.chat_template import ChatTemplate, ChatTemplated
from labdesk.models.ggufinfo import GGUFInfo, read_gguf
from labdesk.models.types import GenRequest, GenResult, ScoreRequest, ScoreResult

if TYPE_CHECKING:
    from labdesk.models.kvcache import DecodeStats, KVCache, Tokens
    from labdesk.recipes import EngineSettings

_N_BATCH = 512
# Prompts tokenized lately: a prompt is counted while it is built, then generated from.
_TOKENIZED = 256
_CACHE: dict[tuple[str, str], Engine] = {}
_CACHE_LOCK = threading.Lock()
_FLASH_ATTN = {"auto": -1, "on": 1, "off": 0}  # llama_flash_attn_type
_LOG_TAIL: deque[str] = deque(maxlen=8)
_log_callback: Any = None  # keeps the ctypes callback alive as long as llama.cpp holds it


def _init_backend() -> None:
    """Initialise llama.cpp once; route its log lines into a short buffer for error messages."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    def on_log(level: int, text: bytes | None, user_data: Any) -> None:
        line = (text or b"").decode("utf-8", "replace").strip()
        if level in (3, 4) and len(line) > 1:  # GGML_LOG_LEVEL_WARN / _ERROR
            _LOG_TAIL.append(line)

    _log_callback = llama_cpp.llama_log_callback(on_log)
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()


def sequences(settings: EngineSettings) -> int:
    """KV sequences of a context: the slots, plus the spare one shared prefixes go to."""
    return settings.parallel + (1 if settings.reuse_prefix else 0)


def plan_for(info: GGUFInfo, settings: EngineSettings, gpu_layers: int) -> MemoryPlan:
    """What loading `info` with `settings` will allocate: a KV stream of n_ctx per sequence."""
    n_ctx_total = settings.n_ctx * sequences(settings)
    return plan_llama(info, n_ctx_total=n_ctx_total, n_batch=_N_BATCH, gpu_layers=gpu_layers)


def release_all() -> None:
    """Close every engine the cache holds, so their weights and KV caches go back to the system
    (the teacher and judge once generation is over, before training loads the student)."""
    with _CACHE_LOCK:
        engines = list(_CACHE.values())
    for engine in engines:
        engine.close()


def resolve_gpu_layers(setting: int | str) -> int:
    """'auto': every layer on the GPU when llama.cpp was built with CUDA/Metal, else none."""
    if setting != "auto":
        return int(setting)
    import llama_cpp

    return 999 if llama_cpp.llama_supports_gpu_offload() else 0


class Engine(ChatTemplated):
    """A loaded GGUF model with a multi-sequence context. Build it with `Engine.load`."""

    def __init__(self, path: Path, settings: EngineSettings, info: GGUFInfo) -> None:
        import llama_cpp

        self.path = path
        self.settings = settings
        self.info = info
        self.parallel = settings.parallel
        self.reuse_prefix = settings.reuse_prefix
        self._lock = threading.RLock()
        self._piece_cache: dict[int, bytes] = {}
        self._eog_cache: dict[int, bool] = {}
        self._tokenized: OrderedDict[str, Tokens] = OrderedDict()
        self._tokenized_lock = threading.Lock()  # not the context's: no wait on a decode

        gpu_layers = resolve_gpu_layers(settings.n_gpu_layers)
        self.device = gpu_device() if gpu_layers > 0 else "cpu"
        # KV layout: one stream of n_ctx cells per sequence, so each token attends to its own
        # sequence's cells only. A unified cache shares prefix cells without copying, but every
        # token's attention then spans every sequence's cells, kept ones included: generating
        # the sample taxonomy with the tiny teacher took 12.9 s unified against 9.0 s in
        # streams (bench/generate.py's workload, timed when we switched; a 126M Q4_K_M
        # teacher: 55 s against 60 s, a wash).
        # Sharing between streams copies a whole stream, cheap next to computing a prompt.
        n_seq = sequences(settings)
        n_ctx_total = settings.n_ctx * n_seq
        check_fits(plan_for(info, settings, gpu_layers), where=str(path))
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = gpu_layers
        model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise ModelError(f"llama.cpp could not load the model: {_log_text()}", where=str(path))
        self._model = model
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx_total
        cparams.n_batch = _N_BATCH
        cparams.n_ubatch = _N_BATCH
        cparams.n_seq_max = n_seq
        cparams.kv_unified = False
        cparams.flash_attn_type = _flash_attn(settings.flash_attn, gpu_layers)
        threads = settings.n_threads or _physical_cores()
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise ModelError(
                f"llama.cpp could not create a context: {_log_text()}",
                where=str(path),
                hint="lower engine.n_ctx or engine.parallel",
            )
        self._ctx = ctx
        from labdesk.models.kvcache import KVCache

        # The one owner of what every sequence's KV cells hold (see kvcache.py).
        self.kv: KVCache = KVCache(ctx, n_seq, settings.n_ctx, reuse=settings.reuse_prefix)
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self.n_ctx = settings.n_ctx
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.template = ChatTemplate.for_gguf(info, settings.chat_template)

    @classmethod
    def load(cls, path: Path | str, settings: EngineSettings) -> Engine:
        """The engine for `path` with `settings`, loaded on first use and then shared."""
        path = Path(path).expanduser().resolve()
        key = (str(path), settings.model_dump_json())
        with _CACHE_LOCK:
            engine = _CACHE.get(key)
            if engine is None:
                info = read_gguf(path)
                _init_backend()
                engine = _CACHE[key] = cls(path, settings, info)
            return engine

    @property
    def stats(self) -> DecodeStats:
        return self.kv.stats

    @property
    def kv_tokens(self) -> list[list[int]]:
        """The tokens whose KV each sequence holds (kept after its request ends)."""
        return self.kv.held_lists()

    def forget(self) -> None:
        """Drop every cached prompt: the next call computes all of its prompts afresh."""
        with self._lock:
            _ = self.ctx  # raises when the engine is closed
            self.kv.clear()

    def close(self) -> None:
        """Free llama.cpp's memory now (also dropped from the shared cache)."""
        import llama_cpp

        with _CACHE_LOCK:
            for key, engine in list(_CACHE.items()):
                if engine is self:
                    del _CACHE[key]
        with self._lock:
            if self._ctx:
                llama_cpp.llama_free(self._ctx)
                llama_cpp.llama_model_free(self._model)
                self._ctx = self._model = None

    # -- text <-> tokens -------------------------------------------------------------------

    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text`, with BOS where the model wants one and special tokens parsed."""
        return self.prompt_tokens(text).tolist()

    def prompt_tokens(self, text: str) -> Tokens:
        """`tokenize(text)` as a read-only array, remembered for the last few texts: a prompt
        is counted while it is built and then generated from, and tokenized once."""
        with self._tokenized_lock:
            tokens = self._tokenized.get(text)
            if tokens is not None:
                self._tokenized.move_to_end(text)
                return tokens
        import numpy as np

        tokens = np.asarray(self._tokenize(text), dtype=np.int32)
        tokens.flags.writeable = False
        with self._tokenized_lock:
            self._tokenized[text] = tokens
            if len(self._tokenized) > _TOKENIZED:
                self._tokenized.popitem(last=False)
        return tokens

    def _tokenize(self, text: str) -> list[int]:
        import llama_cpp

        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, capacity, True, True)
        if n < 0:
            raise ModelError("text could not be tokenized", where=str(self.path))
        tokens = list(buf[:n])
        # A chat template that writes its own BOS text must not get a second one added.
        if self._add_bos and len(tokens) > 1 and tokens[0] == tokens[1] == self._bos:
            tokens.pop(0)
        return tokens

    def count_tokens(self, text: str) -> int:
        return len(self.prompt_tokens(text))

    def token_bytes(self, token: int) -> bytes:
        """The bytes a generated token stands for (control tokens render as nothing)."""
        piece = self._piece_cache.get(token)
        if piece is None:
            import llama_cpp

            buf = ctypes.create_string_buffer(64)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, 64, 0, False)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
            piece = self._piece_cache[token] = buf.raw[:n]
        return piece

    def is_eog(self, token: int) -> bool:
        """Whether `token` ends a generation (end of turn, end of text)."""
        eog = self._eog_cache.get(token)
        if eog is None:
            import llama_cpp

            eog = self._eog_cache[token] = bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
        return eog

    def detokenize(self, tokens: Sequence[int]) -> str:
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", "replace")

    # -- generation ------------------------------------------------------------------------

    def generate(
        self,
        requests: Sequence[GenRequest],
        *,
        on_result: Callable[[int, GenResult], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[GenResult]:
        """Complete every request (up to `parallel` at once); results in request order.

        `on_result(index, result)` is called as each one finishes. When `cancel` is set, the
        rest come back with finish_reason "cancelled" and the text generated so far.
        """
        from labdesk.models.batch import BatchDecoder

        results: list[GenResult | None] = [None] * len(requests)
        with self._lock:
            for index, result in BatchDecoder(self, requests, cancel).finished():
                results[index] = result
                if on_result is not None:
                    on_result(index, result)
        return [r for r in results if r is not None]

    def can_score(self) -> bool:
        """In process, every prompt's log-probabilities are at hand."""
        return True

    def score(
        self, requests: Sequence[ScoreRequest], *, cancel: threading.Event | None = None
    ) -> list[ScoreResult]:
        """The log-probability of each continuation token after its prompt, per request.

        Requests run `parallel` at once and reuse prompt prefixes any sequence holds, as
        generation does (see scoring.py); a set `cancel` raises Cancelled.
        """
        from labdesk.models.scoring import ScoreDecoder

        with self._lock:
            return ScoreDecoder(self, requests).run(cancel)

    def stream(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: tuple[str, ...] = (),
        cancel: threading.Event | None = None,
    ) -> Iterator[str]:
        """Yield the answer to `prompt` piece by piece; stops within a token once `cancel` is set.

        Text that might be the start of a stop string is held back until it is known not to be.
        """
        from labdesk.models.batch import BatchDecoder

        request = GenRequest(prompt, max_tokens, temperature, top_p, seed, stop)
        hold = max((len(s) for s in stop), default=1) - 1
        emitted = 0
        with self._lock:
            decoder = BatchDecoder(self, [request], cancel)
            for text, result in decoder.progress():
                if result is not None:
                    if len(result.text) > emitted:
                        yield result.text[emitted:]
                    return
                safe = len(text) - hold
                if safe > emitted:
                    yield text[emitted:safe]
                    emitted = safe

    # -- low-level access for the batch decoder ----------------------------------------------

    @property
    def ctx(self) -> Any:
        if not self._ctx:
            raise ModelError("engine is closed", where=str(self.path))
        return self._ctx

    @property
    def vocab(self) -> Any:
        return self._vocab


def _flash_attn(setting: str, gpu_layers: int) -> int:
    """llama.cpp's flash-attention switch for `setting`; 'auto' is off on a CPU.

    There, with more than one thread, a one-token decoding step comes out differently when
    other sequences' steps share its micro-batch (up to 0.84 in a logit on SmolLM2 Q4_1;
    with flash attention off, or one thread, it does not), so a reply would depend on which
    requests happen to run beside it, and a resumed run would not redraw what it lost. Off
    cost nothing measurable on a CPU: 171 requests of the tiny recipe's generation on SmolLM2, two
    runs each, took 98 and 105 s on against 104 and 105 s off (prefix reuse on), 267 and 288 s
    on against 305 and 286 s off (reuse off).
    """
    if setting == "auto" and gpu_layers == 0:
        return _FLASH_ATTN["off"]
    return _FLASH_ATTN[setting]


def _physical_cores() -> int:
    """Physical cores: llama.cpp gains nothing from SMT siblings and loses to oversubscription."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def _log_text() -> str:
    return " / ".join(_LOG_TAIL) or "no details (see llama.cpp's log)"
