"""The judges: rule judges on crafted pairs, likelihood judges on a real instruct model."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.generate.judges import (
    AnswersQuestion,
    AsksItsFact,
    Finished,
    Grounded,
    NotCopied,
    Pair,
    Standalone,
    read_reply,
    reply_request,
    run_judges,
    unsupported_details,
)

PASSAGE = (
    "Gullstone lighthouse stands on a rocky point at the northern tip of Kelderwick. It was "
    "built between 1868 and 1871 to a design by the engineer Agnes Marlowe."
)
QUESTION = "Who designed Gullstone lighthouse?"


def _verdict(judge: object, pair: Pair, model: object = None) -> bool:
    (verdicts,) = run_judges([judge], [pair], model)  # type: ignore[list-item, arg-type]
    return next(iter(verdicts.values())).ok


@pytest.mark.parametrize(
    ("question", "ok"),
    [
        (QUESTION, True),
        ("When was Gullstone lighthouse built?", True),
        ("According to the passage, who designed the lighthouse?", False),
        ("What does the text say about the tower?", False),
        ("Who designed it?", False),
    ],
)
def test_standalone_questions(question: str, ok: bool) -> None:
    assert _verdict(Standalone(), Pair("knowledge", question, "")) is ok


def test_not_copied() -> None:
    seed = "Harrowmouth is the only town on the island, on a sheltered bay."
    judge = NotCopied()
    assert _verdict(judge, Pair("knowledge", QUESTION, "Agnes Marlowe designed it.", PASSAGE))
    assert not _verdict(
        judge, Pair("freeform_skill", "Write a haiku about rain.", "Write a haiku about rain.")
    )
    assert not _verdict(judge, Pair("knowledge", QUESTION, seed, PASSAGE, examples=(seed,)))
    assert not _verdict(judge, Pair("knowledge", QUESTION, PASSAGE, PASSAGE))


def test_unsupported_details_names_what_the_passage_lacks() -> None:
    assert unsupported_details("It was built in 1901 by Agnes Marlowe.", PASSAGE) == ["1901"]
    assert unsupported_details("Thomas Telford designed it.", PASSAGE) == ["Thomas Telford"]
    assert unsupported_details("The engineer Agnes Marlowe designed it in 1868.", PASSAGE) == []


@pytest.fixture(scope="module")
def judge_model(smollm2: Path):  # type: ignore[no-untyped-def]
    from labdesk.models.engine import Engine
    from labdesk.recipes import EngineSettings

    engine = Engine.load(smollm2, EngineSettings(n_ctx=1024, parallel=4))
    yield engine
    engine.close()


def test_a_reply_splits_into_its_tokens_and_the_end_marker(judge_model) -> None:  # type: ignore[no-untyped-def]
    messages = [{"role": "user", "content": QUESTION}]
    answer = "The engineer Agnes Marlowe designed it."
    request = reply_request(judge_model, messages, answer)
    (result,) = judge_model.score([request])
    reply = read_reply(judge_model, request, answer, result)
    assert len(reply.answer) == judge_model.count_tokens(
        request.prompt + answer
    ) - judge_model.count_tokens(request.prompt)
    assert reply.end is not None and reply.end > -5.0  # the marker is expected after a full answer


def test_likelihood_judges_tell_good_from_bad(judge_model) -> None:  # type: ignore[no-untyped-def]
    good = Pair("knowledge", QUESTION, "The engineer Agnes Marlowe designed it.", PASSAGE)
    invented = Pair(
        "knowledge", QUESTION, "It was designed by a famous Italian architect.", PASSAGE
    )
    cut = Pair("knowledge", QUESTION, "The engineer Agnes Marlowe designed it, and it was", PASSAGE)
    off = Pair("knowledge", QUESTION, "It stands on a rocky point at the northern tip.", PASSAGE)
    judges = [Grounded(), Finished(), AnswersQuestion()]
    v = run_judges(judges, [good, invented, cut, off], judge_model)
    assert v[0]["grounded"].value > v[1]["grounded"].value
    assert v[0]["grounded"].ok and not v[1]["grounded"].ok
    assert v[0]["finished"].value > v[2]["finished"].value and not v[2]["finished"].ok
    assert v[0]["answers_question"].value > v[3]["answers_question"].value
    # every rejection says why: an invented name is named
    assert "Italian" in v[1]["grounded"].reason and v[2]["finished"].reason


def test_a_question_must_fit_its_own_fact_better_than_the_facts_it_names(judge_model) -> None:  # type: ignore[no-untyped-def]
    from labdesk.documents.facts import rival_facts
    from labdesk.documents.sample import sample_facts

    facts = sample_facts()
    by_start = {f.text[:24]: f for f in facts}

    def pair(question: str, answer: str) -> Pair:  # as the knowledge pipeline builds it
        own = by_start[answer]
        return Pair(
            "knowledge", question, own.text, own.shown(), rivals=rival_facts(facts, own, question)
        )

    steps = "How many steps lead up to the lantern room of Gullstone lighthouse?"
    ferry = "How long does the ferry crossing to Kelderwick take?"
    pairs = [
        pair(steps, "A spiral staircase of 13"),
        pair(steps, "The tower is 28 metres t"),  # the wrong fact of the same paragraph
        pair(ferry, "The crossing takes two h"),
        pair(ferry, "The ferry Margit Rose sa"),  # shares the words, not the answer
    ]
    verdicts = [v["asks_its_fact"] for v in run_judges([AsksItsFact()], pairs, judge_model)]
    assert [v.ok for v in verdicts] == [True, False, True, False], [v.reason for v in verdicts]
    assert "fits “A spiral staircase of 136 steps" in verdicts[1].reason
