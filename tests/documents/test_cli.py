"""`labdesk documents show`, run as a user would run it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from labdesk.resources import data_dir

LEAF = "knowledge/geography/islands/kelderwick"


def _labdesk(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labdesk", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "LABDESK_HOME": str(home), "COLUMNS": "160"},
    )


def test_show_lists_documents_and_passages(tmp_path: Path) -> None:
    taxonomy = tmp_path / "taxonomy"
    shutil.copytree(data_dir("taxonomy"), taxonomy)
    result = _labdesk(
        "documents", "show", LEAF, "--taxonomy", str(taxonomy), "--max-tokens", "80", home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    for name in ("kelderwick.md", "lantern-tide.md", "gullstone-lighthouse.md"):
        assert name in result.stdout
    assert "Lantern Tide festival > Origins" in result.stdout
    assert "labdesk-sample://kelderwick" in result.stdout
    # the clone went into the workspace cache
    assert list((tmp_path / "cache" / "documents").glob("sample-kelderwick-*.git"))
    # a path on disk to the qna.yaml works too, and --text prints whole passages
    full = _labdesk(
        "documents",
        "show",
        str(taxonomy / LEAF / "qna.yaml"),
        "--taxonomy",
        str(taxonomy),
        "--text",
        home=tmp_path,
    )
    assert full.returncode == 0, full.stderr
    assert "hot spiced apple juice" in full.stdout


def test_show_reports_a_bad_pattern_at_its_line(tmp_path: Path) -> None:
    taxonomy = tmp_path / "taxonomy"
    shutil.copytree(data_dir("taxonomy"), taxonomy)
    qna = taxonomy / LEAF / "qna.yaml"
    text = qna.read_text()
    qna.write_text(text.replace('- "*.md"', '- "maps/*.md"'))
    line = next(i for i, ln in enumerate(qna.read_text().splitlines(), 1) if "maps/*.md" in ln)
    result = _labdesk("documents", "show", LEAF, "--taxonomy", str(taxonomy), home=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"qna.yaml:{line}:7" in result.stderr.replace("\n", "")
    assert "'maps/*.md' matches no file" in result.stderr
