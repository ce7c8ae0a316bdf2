"""Cheap, model-free filters: text quality, a safety blocklist and near-duplicate detection.

Near duplicates are found with MinHash signatures over character shingles and LSH banding: a
new text is compared only with the earlier texts that share a band, then the estimated Jaccard
similarity decides. Character shingles keep short questions comparable (word shingles of a
five-word question say little).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise

import numpy as np

from labdesk.resources import package_file

_SHINGLE = 5
_PERMUTATIONS = 64
_WORD = re.compile(r"\w+")


def normalize(text: str) -> str:
    """Lower case, words only, single spaces: what two texts share regardless of punctuation."""
    return " ".join(_WORD.findall(text.lower()))


def _shingle_hashes(text: str) -> np.ndarray:
    norm = normalize(text)
    if len(norm) <= _SHINGLE:
        grams = {norm}
    else:
        grams = {norm[i : i + _SHINGLE] for i in range(len(norm) - _SHINGLE + 1)}
    digests = [hashlib.blake2b(g.encode(), digest_size=8).digest() for g in sorted(grams)]
    return np.frombuffer(b"".join(digests), dtype=np.uint64)


class NearDuplicates:
    """An index of texts that answers "is this text nearly the same as one already added?"."""

    def __init__(self, threshold: float, seed: int = 1) -> None:
        self.threshold = threshold
        rng = np.random.default_rng(seed)
        # multiply-shift hashing: (a*x + b) mod 2^64, top 32 bits; `a` odd. Wrap-around is wanted.
        self._a = rng.integers(1, 2**63, size=_PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
        self._b = rng.integers(0, 2**63, size=_PERMUTATIONS, dtype=np.uint64)
        self._rows = _rows_per_band(threshold)
        self._buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
        self._signatures: list[np.ndarray] = []
        self._keys: list[str] = []

    def signature(self, text: str) -> np.ndarray:
        hashes = _shingle_hashes(text)
        with np.errstate(over="ignore"):
            mixed = (hashes[:, None] * self._a[None, :] + self._b[None, :]) >> np.uint64(32)
        signature: np.ndarray = mixed.min(axis=0)
        return signature

    def _bands(self, signature: np.ndarray) -> Iterable[tuple[int, bytes]]:
        for band in range(_PERMUTATIONS // self._rows):
            rows = signature[band * self._rows : (band + 1) * self._rows]
            yield band, rows.tobytes()

    def match(self, text: str) -> tuple[str, float] | None:
        """The most similar earlier text's key and its similarity, if at or above threshold."""
        signature = self.signature(text)
        candidates = {i for band in self._bands(signature) for i in self._buckets.get(band, [])}
        best: tuple[str, float] | None = None
        for i in sorted(candidates):
            similarity = float(np.mean(self._signatures[i] == signature))
            if similarity >= self.threshold and (best is None or similarity > best[1]):
                best = (self._keys[i], similarity)
        return best

    def add(self, key: str, text: str) -> None:
        signature = self.signature(text)
        index = len(self._signatures)
        self._signatures.append(signature)
        self._keys.append(key)
        for band in self._bands(signature):
            self._buckets[band].append(index)


def _rows_per_band(threshold: float) -> int:
    """The most rows per band that still makes pairs at `threshold` collide almost surely.

    With b bands of r rows a pair of similarity s shares a band with probability
    1 - (1 - s^r)^b; we want that >= 0.99 at the threshold, and as few false candidates as
    possible (more rows per band).
    """
    best = 1
    for rows in (1, 2, 4, 8, 16):
        bands = _PERMUTATIONS // rows
        if 1 - (1 - threshold**rows) ** bands >= 0.99:
            best = rows
    return best


class Blocklist:
    """Rejects text containing any listed phrase (whole words, case-insensitive)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        lines = package_file("generate", "blocklist.txt").read_text(encoding="utf-8").splitlines()
        phrases = [p.strip() for p in (*lines, *extra) if p.strip() and not p.startswith("#")]
        self.phrases = sorted(set(phrases))
        alternatives = "|".join(r"\s+".join(map(re.escape, p.split())) for p in self.phrases)
        self._pattern = re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE) if phrases else None

    def find(self, text: str) -> str | None:
        """The first blocked phrase in `text`, or None."""
        if self._pattern is None:
            return None
        found = self._pattern.search(text)
        return found.group(0) if found else None


def quality_problem(text: str, *, min_words: int = 2, echo_of: Iterable[str] = ()) -> str | None:
    """Why `text` is unusable as a training field, or None: empty, too short, or an echo."""
    words = normalize(text).split()
    if not words:
        return "empty"
    if len(words) < min_words:
        return f"too short ({len(words)} word{'s' if len(words) != 1 else ''})"
    norm = " ".join(words)
    for other in echo_of:
        if other and norm == normalize(other):
            return "repeats the prompt's own text"
    if _repetitive(words):
        return "degenerate repetition"
    return None


def _repetitive(words: list[str]) -> bool:
    """One word or bigram filling most of a long text: a model stuck in a loop."""
    if len(words) < 12:
        return False
    bigrams = Counter(pairwise(words))
    top = bigrams.most_common(1)[0][1]
    return top / (len(words) - 1) > 0.5 or len(set(words)) <= math.ceil(len(words) * 0.1)
