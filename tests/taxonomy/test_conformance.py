"""Our validator against InstructLab's own parser, on every real qna.yaml we have (2,041 files).

The reference is `instructlab.schema.taxonomy.TaxonomyParser` set up as `ilab taxonomy diff`
sets it up, with a real `yamllint` on PATH. Verdicts (valid or not) and the set of YAML paths
with errors must agree on every file.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from labdesk.resources import data_dir
from labdesk.taxonomy import load_taxonomy
from labdesk.taxonomy.upstream import UpstreamVerdict, upstream_check, yamllint_on_path
from labdesk.taxonomy.validate import check_file

from .corpus import lay_out

# `yamllint` on PATH: upstream runs it as a subprocess and silently skips linting without it.
VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture(autouse=True)
def _yamllint_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    assert yamllint_on_path()


def test_reference_really_lints(tmp_path: Path) -> None:
    bad = tmp_path / "compositional_skills" / "lint" / "qna.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text("version: 3   \ncreated_by: me\n")  # trailing spaces
    verdict = upstream_check(bad)
    assert any("trailing spaces" in m for m in verdict.messages), verdict


def _ours(path: Path, root: Path) -> tuple[bool, frozenset[str]]:
    problems = check_file(path, root=root).problems
    errors = [p for p in problems if p.severity == "error"]
    return not errors, frozenset(p.yaml_path for p in errors if p.code == "schema")


@pytest.mark.slow
def test_every_real_file_gets_upstreams_verdict(shared_fixtures: Path, tmp_path: Path) -> None:
    corpus = lay_out(shared_fixtures, tmp_path / "corpus")
    assert len(corpus) == 2041
    with ProcessPoolExecutor(max_workers=2) as pool:
        reference = list(pool.map(upstream_check, [f.path for f in corpus], chunksize=16))

    disagreements = []
    kinds = {"valid": 0, "invalid": 0, "crashed": 0, "linted": 0}
    for file, theirs in zip(corpus, reference, strict=True):
        valid, paths = _ours(file.path, file.root)
        kinds["valid" if theirs.valid else "invalid"] += 1
        kinds["crashed"] += theirs.crashed is not None
        kinds["linted"] += any("(" in m and ")" in m for m in theirs.messages)
        if valid != theirs.valid or (theirs.crashed is None and paths != theirs.error_paths):
            disagreements.append(_explain(file.origin, valid, paths, theirs))
    assert not disagreements, "\n".join(disagreements[:20])
    # the corpus exercises every branch: valid files, schema errors, lint errors, crashes
    assert kinds["valid"] > 500 and kinds["invalid"] > 500, kinds
    assert kinds["crashed"] > 50 and kinds["linted"] > 50, kinds


def _explain(origin: str, valid: bool, paths: frozenset[str], theirs: UpstreamVerdict) -> str:
    return (
        f"{origin}: ours valid={valid} paths={sorted(paths)}; upstream valid={theirs.valid} "
        f"paths={sorted(theirs.error_paths)} crashed={theirs.crashed} {theirs.messages[:3]}"
    )


def test_packaged_sample_passes_ours_and_upstreams() -> None:
    root = data_dir("taxonomy")
    taxonomy = load_taxonomy(root)
    assert not taxonomy.errors, [str(p) for p in taxonomy.errors]
    assert len(taxonomy.leaves) >= 3
    for leaf in taxonomy.leaves:
        verdict = upstream_check(leaf.file)
        assert verdict.valid and verdict.warnings == 0, (leaf.path, verdict.messages)
