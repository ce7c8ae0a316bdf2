"""Which leaves changed against a git base, as `ilab taxonomy diff` decides it."""

from __future__ import annotations

import subprocess
from pathlib import Path, PurePosixPath

from labdesk.errors import TaxonomyError
from labdesk.taxonomy.load import CANDIDATE_NAMES, find_leaf_files

EMPTY_BASE = "empty"
"""ilab's special base: every leaf counts as new."""


def diff_leaves(root: Path, base: str = "origin/main") -> list[str]:
    """Leaf files (taxonomy-relative, e.g. ``compositional_skills/x/qna.yaml``) that differ from
    `base`: committed since the merge base, changed in the working tree, or untracked."""
    root = Path(root)
    if base == EMPTY_BASE:
        return [p.relative_to(root).as_posix() for p in find_leaf_files(root)]
    _git(root, "rev-parse", "--is-inside-work-tree", what="is not inside a git repository")
    _git(root, "rev-parse", "--verify", "--quiet", f"{base}^{{commit}}", what=f"has no '{base}'")
    changed = set(_git(root, "diff", "--name-only", "--relative", f"{base}...HEAD"))
    changed |= set(_git(root, "diff", "--name-only", "--relative", "HEAD"))
    changed |= set(_git(root, "ls-files", "--others", "--exclude-standard"))
    return sorted(
        path
        for path in changed
        if PurePosixPath(path).name in CANDIDATE_NAMES and (root / path).is_file()
    )


def _git(root: Path, *args: str, what: str = "") -> list[str]:
    try:
        result = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise TaxonomyError("git is not installed", hint="install git to diff a taxonomy") from exc
    if result.returncode != 0:
        raise TaxonomyError(
            f"the taxonomy {what}" if what else f"git {' '.join(args)} failed: {result.stderr}",
            where=str(root),
            hint="diff needs the taxonomy in a git repository with the base ref fetched "
            "(e.g. `git fetch origin`), or use --base empty to list every leaf",
        )
    return [line for line in result.stdout.splitlines() if line]
