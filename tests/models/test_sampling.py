"""The numpy top-p draw samples the nucleus distribution exactly (checked against the sorted
definition), row by row when every slot of a step is drawn together."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labdesk.models.sampling import draw_top_p, draw_top_p_rows
from labdesk.models.types import GenRequest

from .conftest import load


def nucleus(logits: np.ndarray, temperature: float, top_p: float) -> np.ndarray:
    """The textbook definition: sort, keep the shortest prefix holding top_p, renormalize."""
    probs = np.exp((logits - logits.max()) / temperature)
    probs /= probs.sum()
    order = np.argsort(-probs, kind="stable")
    before = np.cumsum(probs[order]) - probs[order]  # mass of the more likely tokens
    keep = order[before < top_p]
    out = np.zeros_like(probs)
    out[keep] = probs[keep] / probs[keep].sum()
    return out


@pytest.mark.parametrize(
    ("temperature", "top_p"), [(0.7, 0.8), (1.0, 0.95), (1.3, 1.0), (0.5, 0.3)]
)
def test_draws_follow_the_nucleus_distribution(temperature: float, top_p: float) -> None:
    logits = np.array([2.0, 1.5, 1.0, 0.2, -0.5, -1.0, -3.0, 0.9], dtype=np.float32)
    expected = nucleus(logits, temperature, top_p)
    rng = np.random.default_rng(7)
    draws = 40_000
    counts = np.bincount(
        [draw_top_p(logits, temperature, top_p, rng) for _ in range(draws)], minlength=len(logits)
    )
    assert not counts[expected == 0].any(), "a token outside the nucleus was drawn"
    assert np.abs(counts / draws - expected).max() < 0.01


def test_same_seed_same_tokens_on_a_large_vocabulary() -> None:
    logits = np.random.default_rng(0).standard_normal(32_000).astype(np.float32) * 3
    first = [draw_top_p(logits, 0.8, 0.95, np.random.default_rng(11)) for _ in range(3)]
    again = [draw_top_p(logits, 0.8, 0.95, np.random.default_rng(11)) for _ in range(3)]
    assert first == again
    allowed = nucleus(logits, 0.8, 0.95) > 0
    rng = np.random.default_rng(3)
    assert all(allowed[draw_top_p(logits, 0.8, 0.95, rng)] for _ in range(500))


def test_rows_drawn_together_each_follow_their_own_nucleus() -> None:
    logits = np.array(
        [
            [2.0, 1.5, 1.0, 0.2, -0.5, -1.0, -3.0, 0.9],
            [0.1, 0.1, 3.0, 2.9, -1.0, 0.0, 0.5, -2.0],
            [-1.0, 2.5, 2.4, 2.3, 0.0, 1.0, -0.5, 0.7],
        ],
        dtype=np.float32,
    )
    temperatures, top_ps = [0.7, 1.3, 0.5], [0.8, 1.0, 0.3]
    rngs = [np.random.default_rng(seed) for seed in (1, 2, 3)]
    draws = 20_000
    counts = np.zeros(logits.shape, dtype=np.int64)
    for _ in range(draws):
        tokens = draw_top_p_rows(logits, temperatures, top_ps, rngs)
        counts[np.arange(3), tokens] += 1
    for row in range(3):
        expected = nucleus(logits[row], temperatures[row], top_ps[row])
        assert not counts[row][expected == 0].any()
        assert np.abs(counts[row] / draws - expected).max() < 0.015


def test_a_rows_draws_do_not_depend_on_its_neighbours() -> None:
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((4, 32_000)) * 3).astype(np.float32)
    settings = ([0.8, 1.0, 0.6, 1.2], [0.95, 0.9, 1.0, 0.5])
    together = draw_top_p_rows(logits, *settings, [np.random.default_rng(s) for s in range(4)])
    for row in range(4):
        alone = draw_top_p(
            logits[row], settings[0][row], settings[1][row], np.random.default_rng(row)
        )
        assert alone == together[row]


def test_one_step_mixing_greedy_drawn_and_constrained_slots_equals_each_alone(
    stories_gguf: Path,
) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}}}
    story = "Once upon a time, there was a little girl named"
    requests = [
        GenRequest(story, 12),
        GenRequest(story, 12, temperature=0.9, top_p=0.9, seed=5),
        GenRequest(story, 40, schema=schema),
        GenRequest(story, 40, temperature=1.0, seed=6, schema=schema),
        GenRequest(story, 12, temperature=0.7, seed=7, pattern="[A-Z][a-z]+ (and|or) [a-z ]+"),
    ]
    engine = load(stories_gguf, parallel=5, reuse_prefix=False)
    together = [r.text for r in engine.generate(requests)]
    alone = [
        load(stories_gguf, parallel=1, reuse_prefix=False).generate([r])[0].text for r in requests
    ]
    assert together == alone
    assert json.loads(together[2]).keys() == {"name"}
    assert together[4][0].isupper()
