"""The taxonomy: load `qna.yaml` leaves, validate them exactly like upstream, diff, scaffold."""

from __future__ import annotations

from pathlib import Path

from labdesk.taxonomy.diff import diff_leaves
from labdesk.taxonomy.leaves import QA, DocumentRef, Leaf, LeafKind, Seed, leaf_slug
from labdesk.taxonomy.load import Taxonomy, content_hash, load_taxonomy
from labdesk.taxonomy.problems import Problem, has_errors
from labdesk.taxonomy.skeleton import new_leaf
from labdesk.taxonomy.validate import check_file, check_text, taxonomy_rel_path


def validate_file(path: Path, *, root: Path | None = None) -> list[Problem]:
    """Every problem in one file: upstream's verdict (errors) plus our advice (warnings)."""
    return check_file(Path(path), root=root).problems


def validate_text(text: str, path: str) -> list[Problem]:
    """Check unsaved text as if it were the file `path` (taxonomy-relative, or absolute)."""
    rel = taxonomy_rel_path(Path(path), None) if Path(path).is_absolute() else path
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    return check_text(normalised, rel, path).problems


__all__ = [
    "QA",
    "DocumentRef",
    "Leaf",
    "LeafKind",
    "Problem",
    "Seed",
    "Taxonomy",
    "content_hash",
    "diff_leaves",
    "has_errors",
    "leaf_slug",
    "load_taxonomy",
    "new_leaf",
    "validate_file",
    "validate_text",
]
