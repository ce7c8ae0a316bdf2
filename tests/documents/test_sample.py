"""The packaged sample knowledge leaf: valid upstream, and its documents build offline at the
exact commit it pins."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from instructlab.schema.taxonomy import TaxonomyParser

from labdesk.documents import (
    build_sample_repo,
    chunk_documents,
    documents_for_leaf,
    resolve_documents,
)
from labdesk.documents.sample import SAMPLE_SCHEME, sample_sources
from labdesk.errors import DocumentError
from labdesk.resources import data_dir
from labdesk.taxonomy.leaves import QA, DocumentRef, Leaf, Seed

SAMPLE_LEAF = "knowledge/geography/islands/kelderwick"


def _sample_qna() -> Path:
    return data_dir("taxonomy") / SAMPLE_LEAF / "qna.yaml"


def _leaf(file: Path, path: str = SAMPLE_LEAF) -> Leaf:
    """The leaf as the taxonomy loader would type it (built here so this test needs only YAML)."""
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    doc = data["document"]
    return Leaf(
        path=path,
        file=file,
        kind="knowledge",
        version=data["version"],
        created_by=data["created_by"],
        task_description=data["document_outline"],
        seeds=tuple(
            Seed(
                tuple(QA(q["question"], q["answer"]) for q in s["questions_and_answers"]),
                s["context"],
            )
            for s in data["seed_examples"]
        ),
        content_hash="not-needed-here",
        domain=data["domain"],
        document=DocumentRef(doc["repo"], doc["commit"], tuple(doc["patterns"])),
    )


def test_sample_leaf_is_valid_by_upstream_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    # upstream runs yamllint as a command: put the venv's copy on PATH, and lint strictly
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert shutil.which("yamllint"), "yamllint must run, or upstream silently skips linting"
    parser = TaxonomyParser(schema_version=0, message_format="standard", yamllint_strict=True)
    result = parser.parse(_sample_qna())
    assert (result.errors, result.warnings) == (0, 0)
    assert result.version == 3
    assert len(result.contents["seed_examples"]) >= 5
    assert all(len(s["questions_and_answers"]) == 3 for s in result.contents["seed_examples"])


def test_sample_repo_is_deterministic_and_pinned(tmp_path: Path) -> None:
    first, commit_a = build_sample_repo(tmp_path / "a.git")
    _, commit_b = build_sample_repo(tmp_path / "b.git")
    assert commit_a == commit_b
    # building again where one exists reuses it
    assert build_sample_repo(first) == (first, commit_a)
    data = yaml.safe_load(_sample_qna().read_text())
    assert data["document"]["commit"] == commit_a
    assert data["document"]["repo"] == f"{SAMPLE_SCHEME}kelderwick"
    attribution = (_sample_qna().parent / "attribution.txt").read_text()
    assert commit_a in attribution
    # the commit holds exactly the packaged files, byte for byte
    listed = subprocess.run(
        ["git", "--git-dir", str(first), "ls-tree", "--name-only", commit_a],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert listed == sorted(p.name for p in sample_sources().iterdir())


def test_sample_leaf_documents_resolve_offline(tmp_path: Path) -> None:
    # a copy of the packaged taxonomy, as a user's workspace gets it
    taxonomy = tmp_path / "taxonomy"
    shutil.copytree(data_dir("taxonomy"), taxonomy)
    leaf = _leaf(taxonomy / SAMPLE_LEAF / "qna.yaml")
    docs = documents_for_leaf(leaf, tmp_path / "cache")
    assert [d.path for d in docs] == sorted(p.name for p in sample_sources().glob("*.md"))
    for doc in docs:
        assert doc.text == (sample_sources() / doc.path).read_text(encoding="utf-8")
        assert doc.format == "markdown"
        assert doc.commit == leaf.document.commit  # type: ignore[union-attr]
    # every sentence of every seed context is taken from the documents (contexts are excerpts)
    corpus = " ".join(" ".join(d.text.replace("*", "").split()) for d in docs)
    for seed in leaf.seeds:
        for sentence in re.split(r"(?<=\.) ", " ".join((seed.context or "").split())):
            assert sentence in corpus
    chunks = chunk_documents(docs, max_tokens=120)
    assert all(c.tokens <= 120 for c in chunks)
    assert {c.document for c in chunks} == {d.path for d in docs}


def test_unknown_sample_repository_is_a_clear_error(tmp_path: Path) -> None:
    ref = DocumentRef(f"{SAMPLE_SCHEME}atlantis", "0" * 40, ("*.md",))
    with pytest.raises(DocumentError, match="no sample document repository 'atlantis'"):
        resolve_documents(ref, tmp_path)
