"""Free answers scored by the facts they state, and the uncertainty every score carries."""

from __future__ import annotations

import pytest

from labdesk.evaluate.scoring import is_right, mean_interval, states, wilson


def test_a_fact_is_stated_as_whole_words_in_any_wording() -> None:
    assert states("It has 136 steps.", "136") and not states("It has 1136 steps.", "136")
    assert states("the OLD COW, they said", "Old Cow")
    expect = [["90", "ninety"], ["sea caves", "caves"]]
    assert is_right("Ninety days, in caves below Cragfell.", expect)
    assert not is_right("Ninety days.", expect)
    assert is_right("Ninety days.", expect, need=1)


@pytest.mark.parametrize("answer", ["", "   ", "\n"])
def test_an_empty_answer_is_never_right(answer: str) -> None:
    assert not is_right(answer, [["136"]]) and not is_right(answer, [["136"]], need=1)
    assert not is_right(answer, [])  # nothing expected is no free point either


def test_intervals_hold_the_estimate_and_stay_in_range() -> None:
    assert wilson(0, 20) == (0.0, pytest.approx(0.161, abs=1e-3))
    low, high = wilson(12, 20)
    assert low < 0.6 < high and low >= 0.0 and high <= 1.0
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = mean_interval([-1.0, -2.0, -3.0])
    assert low < -2.0 < high
    assert mean_interval([-1.5]) == (-1.5, -1.5)
