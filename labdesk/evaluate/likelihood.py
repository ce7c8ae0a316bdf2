"""Multiple choice by log-likelihood: which option does the model find most probable as its answer?

Each option is scored as the assistant's whole reply in the model's own chat template, end-of-turn
marker included, by its mean token log-probability (so long options are not penalised for their
length). This measures what the model believes even where it is too small to write a letter.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np

from labdesk.errors import ModelError
from labdesk.models.chat_template import ChatTemplate
from labdesk.models.ggufinfo import read_gguf

if TYPE_CHECKING:
    from llama_cpp import Llama

    from labdesk.recipes import EngineSettings


class ChoiceScorer:
    """One GGUF opened with every position's logits kept; use as a context manager."""

    def __init__(self, path: Path, settings: EngineSettings) -> None:
        from llama_cpp import Llama

        from labdesk.models.engine import resolve_gpu_layers

        info = read_gguf(path)
        self.template = ChatTemplate.for_gguf(info, settings.chat_template)
        try:
            self.llm: Llama = Llama(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_batch=min(settings.n_ctx, 512),
                n_threads=settings.n_threads,
                n_gpu_layers=resolve_gpu_layers(settings.n_gpu_layers),
                logits_all=True,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"llama.cpp cannot load the model: {exc}", where=str(path)) from None
        self.path = path

    def __enter__(self) -> ChoiceScorer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.llm.close()

    def _tokens(self, text: str) -> list[int]:
        tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        if len(tokens) > 1 and tokens[0] == tokens[1] == self.llm.token_bos():
            tokens.pop(0)  # the template wrote its own BOS text
        return tokens

    def fits(self, messages: list[dict[str, str]], options: tuple[str, ...]) -> bool:
        """Whether the question with its longest option fits the context."""
        longest = max(options, key=len)
        reply = [*messages, {"role": "assistant", "content": longest}]
        rendered = self.template.render(reply, add_generation_prompt=False)
        return len(self._tokens(rendered)) <= self.llm.n_ctx()

    def option_scores(
        self, messages: list[dict[str, str]], options: tuple[str, ...]
    ) -> list[float]:
        """Mean log-probability of each option as the reply to `messages`."""
        prompt = self._tokens(self.template.render(messages, add_generation_prompt=True))
        self.llm.reset()
        self.llm.eval(prompt)
        scores = []
        for option in options:
            reply = [*messages, {"role": "assistant", "content": option}]
            full = self._tokens(self.template.render(reply, add_generation_prompt=False))
            if full[: len(prompt)] != prompt:
                raise ModelError(
                    "the chat template renders the question differently once answered",
                    where=str(self.path),
                )
            continuation = full[len(prompt) :]
            if len(full) > self.llm.n_ctx():
                raise ModelError(
                    f"a multiple-choice item needs {len(full)} tokens, more than the context",
                    where=str(self.path),
                    hint="raise engine.n_ctx in the recipe",
                )
            self.llm.n_tokens = len(prompt)  # keep the question's KV cache, drop the last option
            self.llm.eval(continuation)
            logits = np.asarray(self.llm.scores[len(prompt) - 1 : len(full) - 1], dtype=np.float64)
            top = logits.max(axis=1, keepdims=True)
            logprobs = logits - top - np.log(np.exp(logits - top).sum(axis=1, keepdims=True))
            picked = logprobs[np.arange(len(continuation)), continuation]
            scores.append(float(picked.mean()))
        return scores
