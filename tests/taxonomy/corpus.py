"""The real InstructLab taxonomy files in ../shared/fixtures, laid out as their taxonomy had them.

Each fixture file sits at ``files/<top>/<blob>/<name>`` with an ``ORIGIN`` file holding its path in
the community taxonomy. Parsers care about that path (its top folder picks the schema, its name
must be qna.yaml), so each file is copied to ``<dest>/<blob-id>/<ORIGIN>``: one root per file, as
the same path occurs with different contents across the taxonomy's history.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CorpusFile:
    root: Path
    path: Path
    origin: str


def corpus_sources(fixtures: Path) -> list[Path]:
    base = fixtures / "instructlab-taxonomy" / "files"
    return sorted(origin.parent for origin in base.glob("*/*/ORIGIN"))


def lay_out(fixtures: Path, dest: Path) -> list[CorpusFile]:
    laid: list[CorpusFile] = []
    for folder in corpus_sources(fixtures):
        origin = (folder / "ORIGIN").read_text(encoding="utf-8").strip()
        (source,) = [p for p in folder.iterdir() if p.name != "ORIGIN"]
        root = dest / f"{folder.parent.name}-{folder.name}"
        target = root / origin
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        laid.append(CorpusFile(root, target, origin))
    return laid
