"""Scoring free answers against expected facts, and the uncertainty of every score.

An answer states a fact when one of the fact's accepted wordings occurs in it as whole words,
case-insensitively ("136" is in "136 steps", not in "1136"); it is right when it states every
expected fact. An empty answer states nothing, so it is never right. Accuracies carry a Wilson
95 % interval (sound for small n and for 0 or n successes); means carry a normal one. Whether
tuning changed a score is a paired question (both models answer the same items), so it is
decided by a sign test on the items that changed, not by comparing the two intervals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

Z95 = 1.959963984540054


def states(answer: str, wording: str) -> bool:
    pattern = r"(?<!\w)" + re.escape(wording.strip()) + r"(?!\w)"
    return bool(wording.strip()) and re.search(pattern, answer, re.IGNORECASE) is not None


def is_right(answer: str, expect: Sequence[Sequence[str]], need: int = 0) -> bool:
    """At least `need` (0: all) expected facts stated, each in any of its wordings."""
    stated = sum(1 for fact in expect if any(states(answer, w) for w in fact))
    return bool(expect) and stated >= (need or len(expect))


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: Sequence[float]) -> tuple[float, float]:
    """A 95 % normal interval of a mean (zero width for fewer than two values)."""
    n = len(values)
    if n < 2:
        value = values[0] if values else 0.0
        return (value, value)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = Z95 * sd / math.sqrt(n)
    return (mean - half, mean + half)


def sign_test(gains: int, losses: int) -> float:
    """Two-sided exact sign test: the chance that items changing at random (each as likely to
    get better as worse) split at least as unevenly as `gains` against `losses`. On right/wrong
    answers this is the exact McNemar test."""
    changed = gains + losses
    if changed == 0:
        return 1.0
    tail = sum(math.comb(changed, i) for i in range(min(gains, losses) + 1))
    return min(1.0, 2 * tail / 2**changed)
