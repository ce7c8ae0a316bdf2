"""A chunk's atomic facts: its sentences, each with the heading path it sits under.

The knowledge pipeline turns facts into questions and answers, so a small teacher only ever
works on one sentence at a time and stays close to the text. Facts are cut without a model:
a 135M teacher asked to list a passage's facts drops some and invents others (measured while
building this), and a sentence is what a closed-book question can ask about. Headings are not
facts; they travel with each fact as its topic, so "It burned paraffin" still says what "it" is.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from labdesk.documents.chunking import HEADING_SEPARATOR, Chunk
from labdesk.names import new_terms

# A sentence ends at . ! or ? (closing quotes and brackets included) followed by whitespace and
# a capital letter, a digit or an opening quote; abbreviations like "e.g. the" do not end one.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_MIN_WORDS = 5
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Fact:
    topic: str
    """The heading path the sentence sits under (``Title > Section``), or the document name."""
    text: str
    chunk: Chunk

    def shown(self) -> str:
        """How a prompt shows it: topic, then the sentence."""
        return f"{self.topic}: {self.text}" if self.topic else self.text

    def terms(self) -> list[str]:
        """What a question about it can ask for: its names and numbers beyond its topic."""
        return new_terms(self.text, self.topic)


def chunk_facts(chunk: Chunk) -> list[Fact]:
    """The sentences of a chunk worth a question (five words or more), in order."""
    facts: list[Fact] = []
    path = chunk.heading.split(HEADING_SEPARATOR) if chunk.heading else []
    for block in re.split(r"\n\s*\n", chunk.text):
        lines = [line for line in block.strip().splitlines() if line.strip()]
        if not lines:
            continue
        heading = _HEADING.match(lines[0])
        if heading:  # a heading line: it becomes the topic of what follows
            marks = lines[0].lstrip()
            level = len(marks) - len(marks.lstrip("#"))
            path = [*path[: max(0, level - 1)], _plain(heading[1])]
            lines = lines[1:]
        text = _plain(" ".join(line.strip() for line in lines))
        for sentence in _SENTENCE_END.split(text):
            sentence = sentence.strip()
            if len(sentence.split()) >= _MIN_WORDS:
                facts.append(Fact(HEADING_SEPARATOR.join(path), sentence, chunk))
    return facts


def sentence_ends(text: str) -> list[int]:
    """Where each sentence of `text` that another one follows ends (after its closing quotes)."""
    return [m.start() + len(m.group().rstrip()) for m in _SENTENCE_END.finditer(text)]


def rival_facts(facts: list[Fact], own: Fact, question: str, count: int = 4) -> tuple[str, ...]:
    """The `count` other facts that `question`'s words point at most (overlap weighted by how
    rare a word is among the facts): the likeliest confusions, in whichever document."""
    overlap = _overlap_with(facts, set(_WORD.findall(question.lower())))
    ranked = sorted((-overlap[i], i) for i, fact in enumerate(facts) if fact != own)
    return tuple(facts[i].text for _, i in ranked[:count])


def closest_fact(facts: list[Fact], reply: str, question: str) -> Fact | None:
    """The fact a reply to `question` draws on: the one sharing most of the reply's words that
    the question lacks (weighted by rarity among `facts`); None when it shares none."""
    said = set(_WORD.findall(reply.lower())) - set(_WORD.findall(question.lower()))
    overlap = _overlap_with(facts, said)
    best = max(range(len(facts)), key=lambda i: overlap[i], default=None)
    return facts[best] if best is not None and overlap[best] > 0 else None


def _overlap_with(facts: list[Fact], words: set[str]) -> list[float]:
    """Each fact's overlap with `words`, a shared word weighing log(facts / facts holding it)."""
    found = [set(_WORD.findall(f.shown().lower())) for f in facts]
    spread = Counter(w for have in found for w in have)
    return [sum(math.log(len(facts) / spread[w]) for w in words & have) for have in found]


def _plain(text: str) -> str:
    """Markdown emphasis and code marks removed: `*Brave Ellen*` is Brave Ellen."""
    return re.sub(r"(\*{1,2}|_{1,2}|`)(\S(?:.*?\S)?)\1", r"\2", text).strip()
