"""Load a taxonomy folder: every qna.yaml checked, the valid ones turned into typed leaves."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from labdesk.errors import TaxonomyError
from labdesk.taxonomy.leaves import QA, DocumentRef, Leaf, Seed
from labdesk.taxonomy.problems import Problem
from labdesk.taxonomy.validate import LEAF_FILE, Checked, check_file

CANDIDATE_NAMES = (LEAF_FILE, "qna.yml")
"""`qna.yml` is picked up only so the name rule can flag it."""


@dataclass(frozen=True)
class Taxonomy:
    root: Path
    leaves: list[Leaf]
    """Valid leaves only, sorted by path."""
    problems: list[Problem]

    def leaf(self, path: str) -> Leaf:
        wanted = path.strip("/").removesuffix(f"/{LEAF_FILE}")
        for leaf in self.leaves:
            if leaf.path == wanted:
                return leaf
        raise TaxonomyError(
            f"no valid leaf '{wanted}' in the taxonomy",
            where=str(self.root),
            hint="`labdesk taxonomy show` lists the leaves; `labdesk taxonomy check` says why one is invalid",
        )

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def find_leaf_files(root: Path) -> list[Path]:
    """Every qna.yaml (and misnamed qna.yml) under `root`, skipping hidden folders like .git."""
    found = [
        path
        for name in CANDIDATE_NAMES
        for path in root.rglob(name)
        if not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]
    return sorted(found)


def load_taxonomy(root: Path) -> Taxonomy:
    """Check every leaf file under `root`; valid ones become `Leaf`s, all findings `Problem`s."""
    root = Path(root)
    if not root.is_dir():
        raise TaxonomyError(
            "taxonomy folder not found",
            where=str(root),
            hint="pass --taxonomy DIR, or run `labdesk taxonomy show` to create the sample one",
        )
    leaves: list[Leaf] = []
    problems: list[Problem] = []
    for file in find_leaf_files(root):
        checked = check_file(file, root=root, file=str(file))
        problems.extend(checked.problems)
        if (leaf := leaf_from(checked, file)) is not None:
            leaves.append(leaf)
    leaves.sort(key=lambda leaf: leaf.path)
    return Taxonomy(root, leaves, problems)


def content_hash(data: Mapping[str, Any]) -> str:
    """sha256 of the parsed content as canonical JSON: comments and layout do not change it."""
    canonical = json.dumps(
        data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def leaf_from(checked: Checked, file: Path) -> Leaf | None:
    """The typed leaf of a file that passed upstream's checks (None for invalid or empty files)."""
    data = checked.data
    if data is None or not checked.valid:
        return None
    path = PurePosixPath(checked.rel_path).parent.as_posix()
    common = {
        "path": path,
        "file": file,
        "version": int(checked.version),  # type: ignore[call-overload]
        "created_by": data["created_by"],
        "content_hash": content_hash(data),
    }
    if checked.schema_name == "knowledge":
        document = data["document"]
        return Leaf(
            kind="knowledge",
            task_description=data["document_outline"],
            seeds=tuple(
                Seed(
                    qa=tuple(
                        QA(qa["question"], qa["answer"]) for qa in seed["questions_and_answers"]
                    ),
                    context=seed["context"],
                )
                for seed in data["seed_examples"]
            ),
            domain=data["domain"],
            document=DocumentRef(document["repo"], document["commit"], tuple(document["patterns"])),
            **common,
        )
    seeds = tuple(
        Seed(qa=(QA(seed["question"], seed["answer"]),), context=seed.get("context") or None)
        for seed in data["seed_examples"]
    )
    return Leaf(
        kind="grounded_skill" if any(seed.context for seed in seeds) else "freeform_skill",
        task_description=data["task_description"],
        seeds=seeds,
        **common,
    )
