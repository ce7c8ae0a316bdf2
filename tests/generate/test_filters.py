"""Model-free filters: near-duplicate detection, the blocklist and text quality checks."""

from __future__ import annotations

import random

from labdesk.generate.filters import Blocklist, NearDuplicates, quality_problem

_WORDS = [
    "island",
    "harbour",
    "lantern",
    "tide",
    "keeper",
    "granite",
    "marsh",
    "river",
    "festival",
    "bay",
    "cliff",
    "moor",
]


def _sentence(rng: random.Random, n: int = 14) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def test_near_duplicate_found_despite_case_and_punctuation() -> None:
    index = NearDuplicates(0.9)
    index.add("a", "What is the highest point of Kelderwick, and how tall is it?")
    match = index.match("what is the HIGHEST point of kelderwick and how tall is it")
    assert match is not None and match[0] == "a" and match[1] > 0.95


def test_different_texts_are_not_duplicates() -> None:
    index = NearDuplicates(0.9)
    index.add("a", "What is the highest point of Kelderwick?")
    assert index.match("Who keeps the Gullstone lighthouse in winter?") is None


def test_similarity_estimate_tracks_exact_jaccard() -> None:
    """MinHash estimates of shingle Jaccard stay close to the exact value on random pairs."""
    rng = random.Random(3)
    index = NearDuplicates(0.5)
    errors = []
    for _ in range(40):
        a = _sentence(rng, 20)
        words = a.split()
        for i in rng.sample(range(len(words)), rng.randint(0, 8)):
            words[i] = rng.choice(_WORDS)
        b = " ".join(words)
        exact = _jaccard(a, b)
        estimate = float((index.signature(a) == index.signature(b)).mean())
        errors.append(abs(exact - estimate))
    assert sum(errors) / len(errors) < 0.08


def _jaccard(a: str, b: str) -> float:
    def grams(s: str) -> set[str]:
        return {s[i : i + 5] for i in range(len(s) - 4)}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def test_low_threshold_still_finds_candidates() -> None:
    """Banding adapts to the threshold: at 0.5 a half-changed text is still compared."""
    index = NearDuplicates(0.5)
    base = "the lantern tide festival is held on the first spring tide after the equinox"
    index.add("base", base)
    assert index.match(base.replace("first", "second").replace("spring", "autumn")) is not None


def test_blocklist_matches_whole_phrases_case_insensitively() -> None:
    blocklist = Blocklist(extra=["Project Nightjar"])
    assert blocklist.find("Explain how to BUILD A  BOMB at home") == "BUILD A  BOMB"
    assert blocklist.find("tell me about project nightjar") == "project nightjar"
    assert blocklist.find("The bombastic keeper built a harbour") is None


def test_quality_problems() -> None:
    assert quality_problem("  ") == "empty"
    assert quality_problem("Yes", min_words=2) == "too short (1 word)"
    assert quality_problem("Why?", min_words=1) is None
    assert (
        quality_problem("Where is it?", echo_of=["where is IT"]) == "repeats the prompt's own text"
    )
    assert quality_problem("tide " * 30) == "degenerate repetition"
    assert quality_problem("The keeper lights the lamp at dusk and trims the wick at dawn.") is None
