"""`labdesk taxonomy check|diff|show|new` and the API behind them, on real files and real git."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from labdesk.cli.main import main
from labdesk.errors import TaxonomyError
from labdesk.resources import data_dir
from labdesk.taxonomy import diff_leaves, load_taxonomy, new_leaf, validate_file, validate_text

HAIKU = "compositional_skills/writing/freeform/haiku/qna.yaml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "taxonomy"
    shutil.copytree(data_dir("taxonomy"), root)
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base"],
    ):
        subprocess.run(["git", "-C", str(root), *args], check=True)
    return root


def test_diff_finds_changed_new_and_untracked_leaves(repo: Path) -> None:
    assert diff_leaves(repo, "HEAD") == []
    haiku = repo / HAIKU
    haiku.write_text(haiku.read_text() + "# edited\n")
    new_file = new_leaf("freeform_skill", "writing/limerick", repo)
    changed = diff_leaves(repo, "HEAD")
    assert changed == sorted([HAIKU, new_file.relative_to(repo).as_posix()])
    assert len(diff_leaves(repo, "empty")) == len(load_taxonomy(repo).leaves) + 1
    with pytest.raises(TaxonomyError, match="no 'origin/main'"):
        diff_leaves(repo)


def test_new_leaf_skeleton_validates_once_filled(tmp_path: Path) -> None:
    for kind in ("freeform_skill", "grounded_skill", "knowledge"):
        file = new_leaf(kind, f"demo/{kind}", tmp_path)
        assert (file.parent / "attribution.txt").is_file()
        errors = [p for p in validate_file(file, root=tmp_path) if p.severity == "error"]
        assert errors, "an unfilled skeleton must not validate"
        counter = iter(range(10_000))
        filled = file.read_text()
        while '""' in filled:
            filled = filled.replace('""', f'"text number {next(counter)}"', 1)
        filled = filled.replace('"text number 0"', "me")  # created_by
        file.write_text(filled)
        problems = validate_file(file, root=tmp_path)
        assert [p for p in problems if p.severity == "error"] == [], problems
        leaf = load_taxonomy(tmp_path).leaf(file.parent.relative_to(tmp_path).as_posix())
        assert leaf.kind == kind
    with pytest.raises(TaxonomyError, match="already exists"):
        new_leaf("knowledge", "demo/knowledge", tmp_path)
    with pytest.raises(TaxonomyError, match="unknown leaf kind"):
        new_leaf("poem", "x", tmp_path)


def test_validate_text_reports_real_lines_for_unsaved_text() -> None:
    text = (data_dir("taxonomy") / HAIKU).read_text()
    assert [p for p in validate_text(text, HAIKU) if p.severity == "error"] == []
    broken = text.replace(
        "  - question: Write a haiku about the first snow of winter.", "  - question:"
    )
    line = broken.splitlines().index("  - question:") + 1
    (problem,) = [p for p in validate_text(broken, HAIKU) if p.severity == "error"]
    assert problem.yaml_path == ".seed_examples[2].question"
    assert problem.line == line and problem.source == "upstream"
    (lint,) = [p for p in validate_text(text + "extra: 1   \n", HAIKU) if p.code.startswith("lint")]
    assert lint.yaml_path == ".extra" and lint.code == "lint:trailing-spaces"
    bad_yaml = validate_text("version: 3\nfoo: [1, 2\n", HAIKU)
    assert bad_yaml[0].code == "yaml" and bad_yaml[0].line == 3


def test_cli_check_formats_and_exit_codes(
    repo: Path, capsys: pytest.CaptureFixture[str], workspace_home: Path
) -> None:
    assert main(["taxonomy", "check", "--taxonomy", str(repo)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = repo / "compositional_skills" / "bad" / "qna.yaml"
    bad.parent.mkdir()
    bad.write_text("version: 3\ncreated_by: me  \n")
    assert main(["taxonomy", "check", "--taxonomy", str(repo), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    codes = {p["code"] for p in report["problems"] if p["severity"] == "error"}
    assert {"lint:trailing-spaces", "schema"} <= codes
    assert main(["taxonomy", "check", str(bad), "--taxonomy", str(repo), "--format", "github"]) == 1
    out = capsys.readouterr().out
    assert f"::error file={bad},line=2,col=15::" in out
    with pytest.raises(SystemExit) as usage:
        main(["taxonomy", "check", "--format", "xml"])
    assert usage.value.code == 2
    # the workspace's taxonomy is the default, seeded from the packaged sample
    assert main(["taxonomy", "show", "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {leaf["kind"] for leaf in shown["leaves"]} >= {"freeform_skill", "grounded_skill"}
    assert Path(shown["root"]) == workspace_home / "taxonomy"


def test_cli_new_then_diff(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--taxonomy", str(repo)]
    assert main(["taxonomy", "new", "grounded_skill", "extraction/dates", *args]) == 0
    created = repo / "compositional_skills" / "extraction" / "dates" / "qna.yaml"
    assert yaml.safe_load(created.read_text())["version"] == 3
    capsys.readouterr()
    assert main(["taxonomy", "diff", "--base", "HEAD", "--format", "json", *args]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["changed"] == ["compositional_skills/extraction/dates/qna.yaml"]
    assert report["errors"] > 0


def test_a_fresh_workspace_can_diff_at_once(
    workspace_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The workspace's taxonomy is a git repository from the first run, based on the sample
    it was seeded from: `labdesk taxonomy diff` works without any setup (issue 16)."""
    assert main(["taxonomy", "diff"]) == 0
    assert "no leaves changed against origin/main" in capsys.readouterr().out
    assert main(["taxonomy", "new", "freeform_skill", "writing/odes"]) == 0
    haiku = workspace_home / "taxonomy" / HAIKU
    haiku.write_text(haiku.read_text() + "# mine\n")
    capsys.readouterr()
    assert main(["taxonomy", "diff", "--format", "json"]) == 1  # the new leaf is not filled in
    changed = json.loads(capsys.readouterr().out)["changed"]
    assert changed == [HAIKU, "compositional_skills/writing/odes/qna.yaml"]


def test_an_older_workspace_taxonomy_goes_under_git_with_its_edits_showing(
    workspace_home: Path,
) -> None:
    from labdesk.workspace import Workspace

    taxonomy = workspace_home / "taxonomy"
    shutil.copytree(data_dir("taxonomy"), taxonomy)  # seeded before there was git
    haiku = taxonomy / HAIKU
    haiku.write_text(haiku.read_text() + "# edited before\n")
    assert Workspace.open().ensure_taxonomy() == taxonomy
    assert (taxonomy / ".git").is_dir()
    assert diff_leaves(taxonomy) == [HAIKU]
