"""Names and numbers in a text: what a fact turns on, and what a right answer must state.

A capitalised word is a name unless it is a common word that is only capitalised because it
starts a sentence; multi-word names ("Agnes Marlowe") stay together; numbers count as digits
("1,400") or number words ("nine"). Used by the judges (an answer's details must be in its
passage) and by evaluation (a held-out answer's details are what a right answer states).
"""

from __future__ import annotations

import re
from typing import Literal

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|"
    "ninety|hundred|thousand"
)
_DETAIL = re.compile(
    r"\d[\d,.]*\d|\d|(?i:\b(?:" + _NUMBER_WORDS + r")\b)|\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)*"
)
# Words that start sentences without being names.
_COMMON = frozenset(
    [
        "a", "an", "the", "it", "its", "this", "that", "these", "those", "they", "he", "she",
        "we", "you", "i", "there", "here", "yes", "no", "on", "in", "at", "by", "for", "from",
        "to", "of", "and", "but", "or", "because", "so", "if", "when", "while", "after",
        "before", "until", "since", "about", "every", "each", "all", "some", "most", "many",
        "few", "what", "who", "where", "which", "how", "why", "is", "are", "was", "were",
    ]
)  # fmt: skip


def new_terms(text: str, given: str) -> list[str]:
    """The names and numbers of `text` that `given` does not already say: what a question
    about `text` can ask for ("Tim's ..." gives Tim; a term is given when all its words are)."""
    said = {w.lower() for w in re.findall(r"\w+", given)}
    return [t for t in names_and_numbers(text) if not set(re.findall(r"\w+", t.lower())) <= said]


def term_kind(term: str) -> Literal["year", "count", "name"]:
    """What a term of `new_terms` is, so a question can ask for it ("which year", "how many")."""
    if re.fullmatch(r"1\d{3}|20\d{2}", term):
        return "year"
    if re.match(r"\d|(?i:" + _NUMBER_WORDS + r")\b", term):
        return "count"
    return "name"


def question_lead(term: str) -> str:
    """How a question asking for `term` opens: a small teacher continues an opening it is
    given far more reliably than it picks what to ask."""
    return {"year": "In which year", "count": "How many", "name": "What is the name of"}[
        term_kind(term)
    ]


def names_and_numbers(text: str) -> list[str]:
    """The names and numbers of `text`, in order, each once (case-insensitively)."""
    found: list[str] = []
    seen: set[str] = set()
    for match in _DETAIL.finditer(text):
        words = match[0].rstrip(".,").split(" ")
        while len(words) > 1 and words[0].lower() in _COMMON:  # "The Gullstone": "Gullstone"
            words.pop(0)
        word = " ".join(words)
        lowered = word.lower()
        if lowered in _COMMON or lowered in seen:
            continue
        seen.add(lowered)
        found.append(word)
    return found
