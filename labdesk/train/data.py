"""Chat samples → token ids with a loss mask → packed micro-batches without padding waste.

Loss covers assistant turns only (or the whole non-system text for samples whose
``metadata.train_on`` is ``all``). Spans come from rendering growing prefixes of the
conversation with the student's own chat template, so any template works as long as a
rendered prefix is a prefix of the whole rendering.

Packing puts several samples in one row; each sample's position ids restart at 0, which is
what transformers' Llama (and mlx here, see mlx_backend) use to keep attention inside each
sample, so packed rows compute exactly what separate rows would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from labdesk.errors import ConfigError
from labdesk.events import Event, Reporter, null_reporter

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE = -100


@dataclass(frozen=True)
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    """Same length as input_ids; IGNORE where no loss is taken. Not yet shifted."""

    @cached_property
    def loss_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


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
    return Tokenized(full, labels)


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
            item = Tokenized(item.input_ids[:max_seq_len], item.labels[:max_seq_len])
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
    """Rows of packed samples, padded to the longest row; position ids restart per sample."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    position_ids: list[list[int]]
    useful_tokens: int
    loss_tokens: int


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


def collate(items: list[Tokenized], batch: list[list[int]], pad_id: int = 0) -> MicroBatch:
    rows = [[items[i] for i in row] for row in batch]
    width = max(sum(len(t.input_ids) for t in row) for row in rows)
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
    return MicroBatch(ids, labels, positions, useful, loss_tokens)


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
