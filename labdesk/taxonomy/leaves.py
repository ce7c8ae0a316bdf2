"""Typed taxonomy leaves: what every later stage reads from a `qna.yaml`.

A leaf's identity is its folder path inside the taxonomy plus a hash of its parsed content, so a
comment or whitespace edit does not regenerate it, and a changed seed does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LeafKind = Literal["knowledge", "freeform_skill", "grounded_skill"]


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


@dataclass(frozen=True)
class Seed:
    """One seed example. Skills hold exactly one Q&A; knowledge holds a context with several."""

    qa: tuple[QA, ...]
    context: str | None = None


@dataclass(frozen=True)
class DocumentRef:
    """A knowledge leaf's documents: a git repository pinned at a commit, and glob patterns."""

    repo: str
    commit: str
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class Leaf:
    path: str
    """Folder relative to the taxonomy root, e.g. ``compositional_skills/writing/haiku``."""
    file: Path
    kind: LeafKind
    version: int
    created_by: str
    task_description: str
    """Skills: `task_description`; knowledge: `document_outline`."""
    seeds: tuple[Seed, ...]
    content_hash: str
    """sha256 of the parsed content (canonical JSON), not of the bytes."""
    domain: str | None = None
    document: DocumentRef | None = None

    @property
    def slug(self) -> str:
        return leaf_slug(self.path)


def leaf_slug(path: str) -> str:
    """A flat file name for a leaf path: ``a/b/c`` → ``a__b__c``."""
    return path.strip("/").replace("/", "__")
