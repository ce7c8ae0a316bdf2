"""Chat samples → token ids with a loss mask → packed micro-batches without padding waste.

Loss covers assistant turns only (or the whole non-system text for samples whose
``metadata.train_on`` is ``all``). Spans come from rendering growing prefixes of the
conversation with the student's own chat template, so any template works as long as a
rendered prefix is a prefix of the whole rendering.

Packing puts several samples in one row; each sample's position ids restart at 0, which is
what transformers' Llama (and mlx here, see mlx_backend) use to keep attention inside each
sample, so packed rows compute exactly what separate rows would.

A self-distillation replay sample (the base model's own answer, `labdesk.train.replay`) can
carry soft targets: the base model's next-token distribution at each answer token, which the
backends learn by KL divergence instead of cross-entropy on the answer text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from labdesk.errors import ConfigError
from labdesk.events import Event, Reporter, null_reporter

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE = -100
SHAPE_STEP = 64
"""Micro-batch widths are rounded up to a multiple of this. oneDNN prepares its CPU kernels for
each new matrix shape, and packed rows vary in width from step to step: 30 steps of the demo's
first phase ran at 186 tokens/s with exact widths and 218 with rounded ones (SmolLM2-135M,
2 cores, logits rounded alike)."""
TOP_K = 32
"""Soft targets keep the base's 32 likeliest next tokens; the rest of its mass is one more bin
(at the 2,429 answer tokens of 30 of SmolLM2-135M's replies in the demo, that bin held 6 % of
the mass on average and 2 % at the median)."""


@dataclass(frozen=True)
class SoftTargets:
    """A distribution to learn at some positions of a sample or a row (shifted: position i
    predicts token i + 1). Elsewhere the arrays hold zeros and `at` is False."""

    ids: np.ndarray
    """[n, TOP_K] token ids, the base model's likeliest next tokens."""
    logp: np.ndarray
    """[n, TOP_K + 1] their log-probabilities, and last the log of all other tokens' mass."""
    at: np.ndarray
    """[n] where the soft targets replace the hard ones."""

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> SoftTargets:
        return cls(
            np.zeros((*shape, TOP_K), np.int64),
            np.zeros((*shape, TOP_K + 1), np.float32),
            np.zeros(shape, bool),
        )


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    """Same length as input_ids; IGNORE where no loss is taken. Not yet shifted."""
    distill: bool = False
    """The answer is the base model's own (self-distillation replay): may take soft targets."""
    soft: SoftTargets | None = None

    @cached_property
    def loss_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)

    @property
    def predicting(self) -> list[int]:
        """Positions whose next token carries loss (where soft targets go)."""
        return [i for i in range(len(self.labels) - 1) if self.labels[i + 1] != IGNORE]

    def with_soft(self, top_ids: np.ndarray, top_logp: np.ndarray) -> Tokenized:
        """This sample with soft targets at `predicting` (`base_targets.Targets`)."""
        soft = SoftTargets.zeros((len(self.input_ids),))
        soft.ids[self.predicting] = top_ids
        soft.logp[self.predicting] = top_logp
        soft.at[self.predicting] = True
        return replace(self, soft=soft)


def _render(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]], gen: bool
) -> list[int]:
    out: Any = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=gen, return_dict=False
    )
    return [int(x) for x in out]


def tokenize_sample(tokenizer: PreTrainedTokenizerBase, sample: dict[str, Any]) -> Tokenized:
    messages = sample["messages"]
    all_text = (sample.get("metadata") or {}).get("train_on") == "all"
    full = _render(tokenizer, messages, gen=False)
    labels = [IGNORE] * len(full)
    for index, message in enumerate(messages):
        role = message["role"]
        if role == "system" or (role != "assistant" and not all_text):
            continue
        # The assistant's header (generation prompt) carries no loss; its text and end do.
        start = len(_render(tokenizer, messages[:index], gen=role == "assistant")) if index else 0
        end = len(_render(tokenizer, messages[: index + 1], gen=False))
        if full[:end] != _render(tokenizer, messages[: index + 1], gen=False):
            raise ConfigError(
                "the student's chat template renders a conversation prefix differently from the "
                "whole conversation, so assistant tokens cannot be located",
                where="student chat template",
                hint="use a chat template whose rendering of earlier turns does not change",
            )
        labels[start:end] = full[start:end]
    meta = sample.get("metadata") or {}
    return Tokenized(full, labels, distill=meta.get("type") == "self_replay")


def tokenize_dataset(
    tokenizer: PreTrainedTokenizerBase,
    samples: list[dict[str, Any]],
    max_seq_len: int,
    overlong: Literal["drop", "truncate"],
    reporter: Reporter = null_reporter,
    phase: str | None = None,
) -> list[Tokenized]:
    """Tokenize every sample; overlong ones are dropped or truncated and always reported."""
    out: list[Tokenized] = []
    too_long = 0
    for sample in samples:
        item = tokenize_sample(tokenizer, sample)
        if len(item.input_ids) > max_seq_len:
            too_long += 1
            if overlong == "drop":
                continue
            item = replace(
                item, input_ids=item.input_ids[:max_seq_len], labels=item.labels[:max_seq_len]
            )
        if item.loss_tokens:
            out.append(item)
    if too_long:
        action = "dropped" if overlong == "drop" else "truncated"
        reporter(
            Event(
                "train",
                "warning",
                f"{too_long} of {len(samples)} samples are longer than max_seq_len={max_seq_len} "
                f"tokens and were {action} (train.overlong)",
                step=phase,
                done=too_long,
                total=len(samples),
            )
        )
    if samples and not out:  # training on nothing would pass for a finished phase
        raise ConfigError(
            f"none of the {len(samples)} samples can be trained on: each is longer than "
            f"max_seq_len={max_seq_len} tokens (train.overlong=drop) or has no answer tokens",
            where=f"phase {phase}" if phase else "training data",
            hint="raise train.max_seq_len, set train.overlong: truncate, or check the mixed data",
        )
    return out


@dataclass(frozen=True)
class MicroBatch:
    """Rows of packed samples, padded to the longest row rounded up to `SHAPE_STEP`; position ids
    restart per sample (and in the padding)."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    position_ids: list[list[int]]
    useful_tokens: int
    loss_tokens: int
    soft: SoftTargets | None = None
    """[rows, width] soft targets, when some sample in the batch has them."""


Plan = list[list[list[int]]]
"""Micro-batches → rows → sample indices: a cheap, deterministic description of an epoch."""


def pack_rows(lengths: list[int], row_len: int) -> list[list[int]]:
    """First-fit decreasing: positions (into `lengths`) per row, each row at most `row_len`."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        size = lengths[index]
        for r, free in enumerate(room):
            if size <= free:
                rows[r].append(index)
                room[r] -= size
                break
        else:
            rows.append([index])
            room.append(row_len - size)
    return rows


def epoch_plan(lengths: list[int], row_len: int, batch_tokens: int, seed: int, epoch: int) -> Plan:
    """One epoch's micro-batches, the same for the same (seed, epoch), so resume can skip."""
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    packed = pack_rows([lengths[i] for i in order], row_len)
    rows = [[order[i] for i in row] for row in packed]
    rng.shuffle(rows)
    per_batch = max(1, batch_tokens // row_len)
    return [rows[s : s + per_batch] for s in range(0, len(rows), per_batch)]


def rounded_up(count: int) -> int:
    return -(-count // SHAPE_STEP) * SHAPE_STEP


def collate(items: list[Tokenized], batch: list[list[int]], pad_id: int = 0) -> MicroBatch:
    rows = [[items[i] for i in row] for row in batch]
    width = rounded_up(max(sum(len(t.input_ids) for t in row) for row in rows))
    ids, labels, positions = [], [], []
    for row in rows:
        r_ids = [x for t in row for x in t.input_ids]
        r_lab = [x for t in row for x in t.labels]
        r_pos = [p for t in row for p in range(len(t.input_ids))]
        pad = width - len(r_ids)
        ids.append(r_ids + [pad_id] * pad)
        labels.append(r_lab + [IGNORE] * pad)
        positions.append(r_pos + list(range(pad)))  # padding is its own "sample": no leakage
    useful = sum(len(t.input_ids) for row in rows for t in row)
    loss_tokens = sum(t.loss_tokens for row in rows for t in row)
    return MicroBatch(ids, labels, positions, useful, loss_tokens, _soft_rows(rows, width))


def _soft_rows(rows: list[list[Tokenized]], width: int) -> SoftTargets | None:
    if not any(t.soft is not None for row in rows for t in row):
        return None
    out = SoftTargets.zeros((len(rows), width))
    for r, row in enumerate(rows):
        start = 0
        for item in row:
            end = start + len(item.input_ids)
            if item.soft is not None:
                out.ids[r, start:end] = item.soft.ids
                out.logp[r, start:end] = item.soft.logp
                out.at[r, start:end] = item.soft.at
            start = end
    return out


def shifted_targets(labels: list[list[int]], positions: list[list[int]]) -> list[list[int]]:
    """Next-token targets per row; a sample's last token never predicts the next sample's first."""
    out = []
    for lab, pos in zip(labels, positions, strict=True):
        row = [*lab[1:], IGNORE]
        for i in range(len(row) - 1):
            if pos[i + 1] == 0:  # next token starts a new sample (or padding)
                row[i] = IGNORE
        out.append(row)
    return out
