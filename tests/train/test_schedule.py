"""The step plan and learning-rate schedule every backend shares."""

from __future__ import annotations

import pytest

from labdesk.errors import ConfigError
from labdesk.recipes import PhaseSettings, TrainSettings
from labdesk.train.data import Tokenized
from labdesk.train.loop import StepPlan, lr_at


def _items(lengths: list[int]) -> list[Tokenized]:
    return [Tokenized(list(range(n)), list(range(n))) for n in lengths]


def test_warmup_then_constant() -> None:
    rates = [lr_at(step, 1e-3, 4) for step in range(10)]
    assert rates[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert rates[4:] == [1e-3] * 6  # no decay within a phase


def test_batch_tokens_below_max_seq_len_is_honoured() -> None:
    train = TrainSettings(max_seq_len=512)
    phase = PhaseSettings(name="knowledge_1", batch_tokens=128, effective_batch_tokens=128)
    plan = StepPlan.build(_items([40] * 15), phase, train)
    for epoch in plan.epochs.values():
        for batch in epoch:
            assert sum(40 * len(row) for row in batch) <= 128
    assert len(plan.steps) == 5  # 15 samples of 40 tokens, three to a 128-token micro-batch


def test_a_sample_longer_than_batch_tokens_is_refused() -> None:
    train = TrainSettings(max_seq_len=512)
    phase = PhaseSettings(name="skills", batch_tokens=128, effective_batch_tokens=128)
    with pytest.raises(ConfigError, match="batch_tokens to at least 300"):
        StepPlan.build(_items([40, 300]), phase, train)
