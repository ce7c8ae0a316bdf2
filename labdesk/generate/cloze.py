"""Cloze questions: a fact turned into questions by rule, one per name or number it holds.

The asked-for term is replaced where it stands by what asks for it ("in 1841" → "in which
year", "136 steps" → "how many steps", "the engineer Agnes Marlowe" → "which engineer"), and
the fact's document is named when the sentence does not name it: "About the Lantern Tide
festival: the festival began in which year?". Such echo questions read like a quiz and are
right by construction (the sentence they were cut from answers them), so the student meets
every fact in one more wording than the teacher's questions, and a fact the teacher wrote no
usable question for still gets some. A quoted word is asked as a name ("a small shop is a
what?"); a fact with no name, number or quote asks for its rarest words instead, rarest among
the leaf's facts, so "willow stems" rather than "lantern": "each household makes one lantern
from what and oiled paper?". A 135M teacher asked for questions writes mostly ones
that another sentence answers (measured with the round trip on SmolLM2: about one in ten
passes); the rule costs nothing and never mismatches.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable
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
_SHORT_WORDS = 8  # fewer, and "meets the sea at what?" loses the river it asks about
GAPPED_WORDINGS = 4  # per cloze question, with `gapped`
_GAP_DROP = 0.65  # of the plain words around the blank, each left out at random
_NAME_WORD = re.compile(r"[\"“]?[A-Z0-9]")  # a name or a number: kept in every gapped wording
_GAP_KEPT = 4  # fewer, and "About Gullstone lighthouse: which year?" asks nothing in particular
_PLAIN = re.compile(r"(?<![\w'’-])[a-z]{4,}(?![\w'’-])")  # a lowercase word of 4+ letters
_BEFORE_NOUN = re.compile(
    r"\b(?:a|an|the|of|from|with|without|on|by|in|at|to|for|before|after)\s$"
)  # what a noun often follows
_ADJECTIVE_BEFORE = re.compile(r"(?<![\w'’-])[a-z]+ed $")  # "waxed thread", "smoked haddock"
_NOT_ASKED = frozenset(
    [
        "that", "this", "with", "from", "they", "them", "their", "there", "when", "which",
        "have", "been", "were", "will", "would", "into", "than", "then", "also", "only",
        "every", "each", "after", "before", "while", "because", "still", "most", "some",
        "what", "where", "whose", "until", "since", "over", "under", "about", "more", "other",
        "such", "does", "anyone", "everyone", "nothing", "ahead", "again", "must", "could",
        "should", "might", "without", "within", "through", "between", "among", "around",
        "during", "along", "against", "near",
    ]
)  # fmt: skip


def word_counts(facts: Iterable[Fact]) -> Counter[str]:
    """In how many of `facts` each lowercase word appears: how rare a word is in the leaf."""
    return Counter(word for fact in facts for word in set(_PLAIN.findall(fact.text)))


def cloze_questions(
    fact: Fact, counts: Counter[str] | None = None, *, short: bool = False, gapped: bool = False
) -> list[str]:
    """One echo question per term of `fact` (names, numbers, quoted words), in order.

    With `counts` (`word_counts` of the leaf's facts), a fact that yields none asks for its
    rarest word instead. With `short`, each question whose sentence has more than one comma
    part is followed by a second wording that keeps only the part around the blank ("About
    Gullstone lighthouse: it was built between 1868 and 1871 to a design by which engineer?"):
    a student trained on whole sentences alone recalled a term when asked with the very words
    it was trained on, and seldom when asked otherwise, so a wording with fewer cues is worth
    a sample. With `gapped`, each question also comes in `GAPPED_WORDINGS` wordings that leave
    out a random 65 % of the plain words around the blank and keep its names and numbers
    ("About Gullstone lighthouse: was 1868 1871 by which engineer ships today?"): the answer,
    the whole sentence, then has to be recalled rather than copied from the question, as it
    must for a question worded unlike the document, from the cues such a question still
    holds: what it names.
    """
    terms = fact.terms()
    terms += [q for q in _quoted(fact.text) if not any(t in q for t in terms)]
    asked = [a for a in (_ask(fact, term) for term in terms) if a]
    if not asked and counts is not None:
        asked = [a for a in (_ask(fact, p, blank="what") for p in _rare(fact, counts)) if a]
    questions: list[str] = []
    for before, wh, after in asked:
        wordings = [before + wh + after]
        if short:
            wordings.append(_around_blank(before, wh, after))
        if gapped:
            wordings += _gapped(before, wh, after, GAPPED_WORDINGS)
        for wording in wordings:
            question = _anchored(fact, _as_question(wording))
            if question not in questions:
                questions.append(question)
    return questions


def _around_blank(before: str, wh: str, after: str) -> str:
    """The comma-separated part of the sentence that holds the blank, grown by its neighbours
    (earlier ones first) to `_SHORT_WORDS` words; a leading "and" or "but" goes."""
    left, right = before.split(", "), after.split(", ")
    kept_left, kept_right = [left.pop()], [right.pop(0)]
    while len(" ".join([*kept_left, wh, *kept_right]).split()) < _SHORT_WORDS and (left or right):
        if left:
            kept_left.insert(0, left.pop())
        else:
            kept_right.append(right.pop(0))
    return re.sub(r"^(?:and|but) ", "", ", ".join(kept_left) + wh + ", ".join(kept_right))


def _gapped(before: str, wh: str, after: str, count: int) -> list[str]:
    """Up to `count` wordings that each leave out a random `_GAP_DROP` of the plain words around
    the blank (the same ones on every run); names and numbers stay, except a sentence's capital
    first word. A wording with fewer than `_GAP_KEPT` words left goes."""
    rng = random.Random(before + wh + after)
    left, right = before.split(), after.split()

    def kept(words: list[str], opening: bool) -> list[str]:
        return [
            w
            for i, w in enumerate(words)
            if (_NAME_WORD.match(w) and not (opening and i == 0)) or rng.random() >= _GAP_DROP
        ]

    wordings = []
    for _ in range(count):
        kept_left, kept_right = kept(left, opening=True), kept(right, opening=False)
        if len(kept_left) + len(kept_right) >= _GAP_KEPT:
            text = " ".join([*kept_left, wh, *kept_right])
            wordings.append(re.sub(r"\s+(?=[,;:.])", "", text).strip(" ,;:"))  # "year ." too
    return wordings


def _as_question(text: str) -> str:
    question = text.strip().rstrip(".!") + "?"
    return question[0].upper() + question[1:]


def _quoted(text: str) -> list[str]:
    return [m[0][1:-1].strip(" ,.") for m in _QUOTED.finditer(text) if len(m[0]) > 2]


def _rare(fact: Fact, counts: Counter[str], limit: int = 2) -> list[str]:
    """Up to `limit` phrases around the fact's rarest words (seen in fewest of the leaf's facts).

    Among equally rare words a likely noun wins (not ending in -ed or -ing, after an article or
    a preposition), then the longest; a following plain word and an -ed word before it join it
    ("willow stems", "waxed thread").
    """
    text = fact.text
    topic = {w.lower() for w in re.findall(r"\w+", fact.topic)}
    words = [m for m in _PLAIN.finditer(text) if m[0] not in topic | _NOT_ASKED]
    words.sort(
        key=lambda m: (
            counts[m[0]],
            m[0].endswith(("ed", "ing")),
            not _BEFORE_NOUN.search(text[: m.start()]),
            -len(m[0]),
        )
    )
    phrases: list[str] = []
    taken: set[int] = set()
    for word in words:
        start, end = word.start(), word.end()
        if adjective := _ADJECTIVE_BEFORE.search(text[:start]):
            start = adjective.start()
        following = _PLAIN.match(text, end + 1) if text[end : end + 1] == " " else None
        if following and following[0] not in _NOT_ASKED:
            end = following.end()
        span = set(range(start, end))
        if span & taken:
            continue
        taken |= span
        phrases.append(text[start:end])
        if len(phrases) == limit:
            break
    return phrases


def _ask(fact: Fact, term: str, blank: str | None = None) -> tuple[str, str, str] | None:
    """`term` blanked where it stands in its clause, as (before, what asks for it, after);
    `blank` forces the words that ask for it."""
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
    if blank:
        wh = blank
    elif kind == "year":
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
    return before, wh, after


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
