"""Cloze questions: each name or number of a fact asked where it stands, the document named."""

from __future__ import annotations

from labdesk.documents.chunking import Chunk
from labdesk.documents.facts import chunk_facts
from labdesk.generate.cloze import GAPPED_WORDINGS, cloze_questions, word_counts

TEXT = """# The Lantern Tide festival

## Origins

The festival began in 1841. The ferry Margit Rose sails from the mainland port of Estholm.
Its only town, Harrowmouth, lies on a sheltered bay. A spiral staircase of 136 steps leads up.
Her notebooks, now kept in the Harrowmouth museum, record forty-three species.
Behind them comes the oldest islander, who holds the "Ellen light", the one carried in 1841.
"""


def _asked() -> dict[str, list[str]]:
    chunk = Chunk("festival.md", 0, None, TEXT, 80)
    return {fact.text.split()[1]: cloze_questions(fact) for fact in chunk_facts(chunk)}


def test_each_term_is_asked_where_it_stands() -> None:
    asked = _asked()
    assert asked["festival"] == [
        "About the Lantern Tide festival: the festival began in which year?"
    ]
    assert (
        "About the Lantern Tide festival: the ferry Margit Rose sails from the mainland port of what?"
        in asked["ferry"]
    )
    assert (
        "About the Lantern Tide festival: the ferry what sails from the mainland port of Estholm?"
        in asked["ferry"]
    )
    assert asked["only"] == [
        "About the Lantern Tide festival: its only town, called what, lies on a sheltered bay?"
    ]
    assert asked["spiral"] == [
        "About the Lantern Tide festival: a spiral staircase of how many steps leads up?"
    ]
    # a name before a noun is asked for by the noun; a number inside a word is not asked
    assert asked["notebooks,"] == [
        "About the Lantern Tide festival: her notebooks, now kept in which museum, record forty-three species?"
    ]


def test_a_quoted_name_is_asked_whole_and_a_pronoun_one_never() -> None:
    (quoted, year) = _asked()["them"]
    assert "holds the what, the one carried in 1841?" in quoted
    assert year.endswith('holds the "Ellen light", the one carried in which year?')


def test_a_sentence_naming_its_document_is_not_prefixed() -> None:
    text = "# Gullstone lighthouse\n\nGullstone lighthouse stands on the cliffs of Cragfell."
    (fact,) = chunk_facts(Chunk("g.md", 0, None, text, 20))
    assert cloze_questions(fact) == ["Gullstone lighthouse stands on the cliffs of what?"]


def test_quoted_words_are_asked_like_names() -> None:
    text = '# Kelderwick\n\nA small shop is a "locker", and the evening meal is "the last watch".'
    (fact,) = chunk_facts(Chunk("k.md", 0, None, text, 20))
    assert cloze_questions(fact) == [
        'About Kelderwick: a small shop is a what, and the evening meal is "the last watch"?',
        'About Kelderwick: a small shop is a "locker", and the evening meal is what?',
    ]


def test_a_fact_without_names_asks_for_its_rarest_words() -> None:
    text = """# Lanterns

Each household makes one lantern from willow stems and oiled paper.
A lantern must be finished without glue; every joint is tied with waxed thread.
The paper of a lantern is dyed with heather.
"""
    facts = chunk_facts(Chunk("l.md", 0, None, text, 40))
    counts = word_counts(facts)
    assert counts["lantern"] == 3 and counts["willow"] == 1
    first, second, _ = (cloze_questions(f, counts) for f in facts)
    # "willow" is in one fact, "lantern" in all three; an -ed word joins the noun after it
    assert first[0] == "About Lanterns: each household makes one lantern from what and oiled paper?"
    assert second == [
        "About Lanterns: a lantern must be finished without what?",
        "About Lanterns: every joint is tied with what?",
    ]
    assert len(first) == len(second) == 2  # two rare phrases at most, never overlapping
    assert cloze_questions(facts[0]) == []  # without the leaf's counts: names and numbers only


def test_a_short_wording_keeps_the_part_of_the_sentence_around_the_blank() -> None:
    text = (
        "# Gullstone lighthouse\n\nIt was built between 1868 and 1871 to a design by the engineer "
        "Agnes Marlowe, and it still guides ships today. The tower is 28 metres tall."
    )
    long_one, short_one = chunk_facts(Chunk("g.md", 0, None, text, 60))[:2]
    asked = cloze_questions(long_one, short=True)
    assert asked == [
        "About Gullstone lighthouse: it was built between which year and 1871 to a design by the "
        "engineer Agnes Marlowe, and it still guides ships today?",
        "About Gullstone lighthouse: it was built between which year and 1871 to a design by the "
        "engineer Agnes Marlowe?",
        "About Gullstone lighthouse: it was built between 1868 and which year to a design by the "
        "engineer Agnes Marlowe, and it still guides ships today?",
        "About Gullstone lighthouse: it was built between 1868 and which year to a design by the "
        "engineer Agnes Marlowe?",
        "About Gullstone lighthouse: it was built between 1868 and 1871 to a design by which "
        "engineer, and it still guides ships today?",
        "About Gullstone lighthouse: it was built between 1868 and 1871 to a design by which "
        "engineer?",
    ]
    assert asked[::2] == cloze_questions(long_one)  # the full wordings, as without `short`
    # a sentence of one part has no shorter wording
    assert cloze_questions(short_one, short=True) == cloze_questions(short_one)


def test_gapped_wordings_leave_out_plain_words_but_keep_the_blank_names_and_numbers() -> None:
    text = (
        "# Gullstone lighthouse\n\nIt was built between 1868 and 1871 to a design by the engineer "
        "Agnes Marlowe, and it still guides ships today."
    )
    fact = chunk_facts(Chunk("g.md", 0, None, text, 60))[0]
    full = cloze_questions(fact)
    asked = cloze_questions(fact, gapped=True)
    assert asked == cloze_questions(fact, gapped=True)  # the same on every run
    assert [q for q in asked if q in full] == full  # the full wordings stay, in order
    gapped = [q for q in asked if q not in full]
    assert len(gapped) == len(full) * GAPPED_WORDINGS
    whole = set(fact.text.lower().replace(",", "").rstrip(".").split())
    for question in gapped:
        assert question.startswith("About Gullstone lighthouse: ")
        body = question.removeprefix("About Gullstone lighthouse: ").rstrip("?")
        assert any(wh in body for wh in ("which year", "which engineer"))
        words = body.lower().replace(",", "").split()
        kept = [w for w in words if w not in ("which", "year", "engineer")]
        assert set(kept) <= whole  # nothing added
        assert len(kept) < len(whole) - 1  # something left out besides the asked-for term
        # what a question about the fact would name stays: the other year and the engineer
        asks_year = "which year" in body
        assert ("Agnes Marlowe" in body) == asks_year
        assert sum(year in body for year in ("1868", "1871")) == (1 if asks_year else 2)
        assert " ," not in question and "??" not in question


def test_a_gapped_wording_that_keeps_the_final_full_stop_ends_in_a_plain_question_mark() -> None:
    text = "# Gullstone lighthouse\n\nThe foghorn was switched off for good in the year 2005."
    fact = chunk_facts(Chunk("g.md", 0, None, text, 60))[0]
    asked = cloze_questions(fact, gapped=True)
    assert len(asked) == 1 + GAPPED_WORDINGS
    assert all(q.endswith("which year?") for q in asked)
