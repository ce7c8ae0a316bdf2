"""Which fact a question or a reply points at: word overlap weighted by rarity among the facts."""

from __future__ import annotations

from labdesk.documents.chunking import Chunk
from labdesk.documents.facts import chunk_facts, closest_fact, rival_facts

TEXT = (
    "# Isle\n\nThe ferry Swift sails from Portmead to the isle twice a day. "
    "The crossing takes forty minutes. The isle has three wells and one inn, the Anchor. "
    "Gulls nest on the cliffs of the isle from April."
)
FACTS = chunk_facts(Chunk("isle.md", 0, "Isle", TEXT, 40, 0, len(TEXT)))
FERRY, CROSSING, WELLS, GULLS = FACTS


def test_a_reply_is_drawn_from_the_fact_whose_rare_words_it_shares() -> None:
    question = "How long does the ferry crossing to the isle take?"
    assert (
        closest_fact(FACTS, "The crossing to the isle takes forty minutes.", question) == CROSSING
    )
    # the words a reply repeats from its question point nowhere: a wrong answer is found out
    assert closest_fact(FACTS, "The ferry Swift sails from Portmead.", question) == FERRY
    assert closest_fact(FACTS, "How long does the ferry crossing take?", question) is None


def test_rivals_are_the_other_facts_a_question_names() -> None:
    rivals = rival_facts(FACTS, CROSSING, "How long does the ferry Swift take?", count=2)
    assert rivals[0] == FERRY.text and CROSSING.text not in rivals
