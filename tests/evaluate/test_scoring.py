"""Free answers scored by the facts they state, the uncertainty every score carries, and when a
change between base and tuned is more than chance."""

from __future__ import annotations

import pytest

from labdesk.evaluate.report import (
    ACCURACY,
    IMPROVED,
    LIKELIHOOD,
    NOT_ASKED,
    REGRESSED,
    UNCLEAR,
    LeafResult,
)
from labdesk.evaluate.scoring import is_right, mean_interval, sign_test, states, wilson


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


def test_the_sign_test_matches_the_binomial_tails() -> None:
    assert sign_test(0, 0) == 1.0 and sign_test(3, 3) == 1.0
    assert sign_test(5, 0) == pytest.approx(2 / 32)  # 5 of 5 the same way: not yet at 5 %
    assert sign_test(6, 0) == pytest.approx(2 / 64) == sign_test(0, 6)
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)


def _answers(pairs: list[tuple[bool, bool]]) -> list[dict[str, object]]:
    def answer(right: bool) -> dict[str, object]:
        return {"answer": "yes" if right else "no", "right": right}

    return [{"question": "q", "base": answer(b), "tuned": answer(t)} for b, t in pairs]


def _row(metric: str, items: list[dict[str, object]]) -> LeafResult:
    return LeafResult("leaf", "knowledge", metric, None, None, items)


def test_a_verdict_needs_more_changed_items_one_way_than_chance_gives() -> None:
    # The README's demo run: 68 % -> 67 % general is 1 point, well within chance.
    same = [(True, True)] * 60 + [(False, False)] * 25
    assert (
        _row(ACCURACY, _answers(same + [(True, False)] * 8 + [(False, True)] * 7)).verdict
        == UNCLEAR
    )
    assert _row(ACCURACY, _answers([(False, True)] * 12 + [(True, False)] * 1)).verdict == IMPROVED
    assert _row(ACCURACY, _answers(same + [(True, False)] * 9)).verdict == REGRESSED
    # four of four facts learned is +100 points, yet four items cannot tell at 5 %
    assert _row(ACCURACY, _answers([(False, True)] * 4)).verdict == UNCLEAR


def test_items_one_model_was_not_scored_on_do_not_count() -> None:
    # counted as wrong, the ten unasked tuned answers would outweigh the six gains
    unasked = {"answer": NOT_ASKED, "right": False}
    items = (
        _answers([(False, True)] * 6)
        + [{"question": "long", "base": {"answer": "yes", "right": True}, "tuned": unasked}] * 10
    )
    assert _row(ACCURACY, items).verdict == IMPROVED
    scored = [{"base": {"likelihood": -3.0}, "tuned": {"likelihood": -2.0}}] * 6
    unscored = [{"base": {"likelihood": None}, "tuned": {"likelihood": -9.0}}] * 10
    assert _row(LIKELIHOOD, scored + unscored).verdict == IMPROVED
    assert _row(LIKELIHOOD, scored[:1]).verdict == UNCLEAR  # one reference never tells
