"""The numpy top-p draw samples the nucleus distribution exactly (checked against the sorted definition)."""

from __future__ import annotations

import numpy as np
import pytest

from labdesk.models.sampling import draw_top_p


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
