"""Cloze questions: a fact turned into questions by rule, one per name or number it holds.

The asked-for term is replaced where it stands by what asks for it ("in 1841" → "in which
year", "136 steps" → "how many steps", "the engineer Agnes Marlowe" → "which engineer"), and
the fact's document is named when the sentence does not name it: "About the Lantern Tide
festival: the festival began in which year?". Such echo questions read like a quiz and are
right by construction (the sentence they were cut from answers them), so the student meets
every fact in one more wording than the teacher's questions, and a fact the teacher wrote no
usable question for still gets some. A 135M teacher asked for questions writes mostly ones
that another sentence answers (measured with the round trip on SmolLM2: about one in ten
passes); the rule costs nothing and never mismatches.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from labdesk.names import term_kind

if TYPE_CHECKING:
    from labdesk.documents.facts import Fact

_FUNCTION = r"(?:of|and|or|to|on|in|at|for|from|by|with|as)"
# "the engineer ", "the fishing boat ": what kind of thing the name that follows is
_KIND = re.compile(rf"\bthe ((?:(?!{_FUNCTION} )[a-z]+ ){{1,2}})$")
_NOUN_AFTER = re.compile(r" ([a-z]+)")  # "the Harrowmouth museum": which museum
_CALLED = re.compile(r"\b(?:called|named|nicknamed|is|as) $")
_QUOTED = re.compile(r"\"[^\"]*\"|“[^”]*”")
_CLAUSE = re.compile(r"[;:]\s+")


def cloze_questions(fact: Fact) -> list[str]:
    """One echo question per term of `fact` that can be asked this way, in order."""
    questions: list[str] = []
    for term in fact.terms():
        question = _ask(fact, term)
        if question and question not in questions:
            questions.append(question)
    return questions


def _ask(fact: Fact, term: str) -> str | None:
    if term.lower() == "one":  # more often a pronoun ("the one carried") than a count
        return None
    clause = next((c for c in _CLAUSE.split(fact.text) if _find(c, term) is not None), None)
    if clause is None:
        return None
    at = _find(clause, term)
    assert at is not None
    kind = term_kind(term)
    if at == 0 and kind == "name":  # a capital opening the sentence: rarely a name
        return None
    start, end = at, at + len(term)
    for quoted in _QUOTED.finditer(clause):  # a quoted name is asked for whole
        if quoted.start() <= start and end <= quoted.end():
            start, end = quoted.span()
    before, after = clause[:start], clause[end:]
    if after[:1] in ("-", "'", "’") or before.endswith(("-", "'s ", "’s ")):  # part of a word
        return None
    noun = _NOUN_AFTER.match(after)
    if kind == "year":
        wh = "which year"
    elif kind == "count":
        wh = "how many"
    elif _CALLED.search(before):
        wh = "what"
    elif before.endswith(", "):  # an apposition: "Its only town, Harrowmouth, lies"
        wh = "called what"
    elif before.endswith("the ") and noun:
        before, wh, after = before[:-4], f"which {noun[1]}", after[noun.end() :]
    elif named := _KIND.search(before):
        before, wh = before[: named.start()], "which " + named[1].strip()
    else:
        wh = "what"
    question = (before + wh + after).strip().rstrip(".!") + "?"
    return _anchored(fact, question[0].upper() + question[1:])


def _anchored(fact: Fact, question: str) -> str:
    """The question with its document named, unless it names it already."""
    title = fact.topic.split(" > ")[0] if fact.topic else ""
    names = [w for w in re.findall(r"[A-Z][\w']+", title) if w.lower() != "the"]
    if not title or any(name in question for name in names):
        return question
    first = question.split()[0]
    opening = question if first.isupper() and len(first) > 1 else question[0].lower() + question[1:]
    return f"About {title[0].lower() + title[1:] if title.startswith('The ') else title}: {opening}"


def _find(text: str, term: str) -> int | None:
    found = re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text)
    return found.start() if found else None
