"""Every command a message tells the user to run is one that works.

Two checks: every `labdesk …` written in backticks anywhere in the package parses with the real
argument parser (a hint argparse rejects was issue 16's `labdesk train nope`), and the hints
the CLI prints in real situations are run, one after the other, the way a user would follow them.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from labdesk.cli.main import build_parser
from labdesk.fileio import write_json, write_jsonl
from labdesk.runlock import hold_run
from labdesk.runs import RunPaths
from labdesk.taxonomy import load_taxonomy
from tests.seeded_runs import write_seed_samples

PACKAGE = Path(__file__).resolve().parents[1] / "labdesk"
HINT = re.compile(r"`(labdesk(?: [^`]*)?)`")
PLACEHOLDER = re.compile(r"\b[A-Z]{3,}\b")
"""A word like RUN or NAME standing for what the user must fill in: no hint of ours has one."""
OURS = ("cli/", "runs.py", "runlock.py", "runindex.py", "recipes.py", "taxonomy/", "flow.py")
"""Files whose hints name real values only (others' are checked for parsing)."""


def _strings(tree: ast.AST) -> list[str]:
    """The string values in code (f-string fields read as "x"), leaving out docstrings: they
    talk about commands, they are not hints."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    parts = {
        id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            found.append(
                "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
            )
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings | parts
        ):
            found.append(node.value)
    return found


def _hints_in_sources() -> list[tuple[str, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for text in _strings(tree):
            for command in HINT.findall(text):
                found.append((path.relative_to(PACKAGE).as_posix(), command))
    return found


def test_every_hint_in_the_sources_parses() -> None:
    hints = _hints_in_sources()
    assert len(hints) > 20
    parser = build_parser()
    rejected = []
    for where, command in hints:
        try:
            parser.parse_args(shlex.split(command)[1:])
        except SystemExit as exc:
            if exc.code != 0:  # `--help` exits 0
                rejected.append(f"{where}: {command}")
    assert not rejected, rejected
    ours = [
        f"{where}: {command}"
        for where, command in hints
        if where.startswith(OURS) and PLACEHOLDER.search(command.replace("EDITOR", ""))
    ]
    assert not ours, ours


def _labdesk(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labdesk", *args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def _printed_hints(result: subprocess.CompletedProcess[str]) -> list[str]:
    return HINT.findall(result.stdout + result.stderr)


def _follow(result: subprocess.CompletedProcess[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run every hint `result` printed; each must run without a usage error or a traceback."""
    hints = _printed_hints(result)
    assert hints, result.stdout + result.stderr
    followed = []
    for hint in hints:
        after = _labdesk(*shlex.split(hint)[1:])
        assert after.returncode in (0, 1), (hint, after.stderr)
        assert "Traceback" not in after.stderr, (hint, after.stderr)
        followed.append(after)
    return followed


def test_printed_hints_work_when_followed(workspace_home: Path, tmp_path: Path) -> None:
    # no such run: the hint lists the runs there are
    missing = _labdesk("export", "run", "nope")
    assert missing.returncode == 1 and "there is no run `nope`" in missing.stderr
    assert _follow(missing)[0].returncode == 0
    assert _labdesk("train", "nope").stderr == missing.stderr.replace("export run", "train")

    # a misspelt --set: the hint shows the recipe's real fields
    typo = _labdesk("recipes", "show", "tiny", "--set", "generate.samples_per_lef=3")
    assert "did you mean `samples_per_leaf`" in typo.stderr
    (shown,) = _follow(typo)
    assert "samples_per_leaf" in shown.stdout

    # a new leaf: the hint checks it (an unfilled skeleton is invalid: exit 1, said in words)
    new = _labdesk("taxonomy", "new", "freeform_skill", "writing/odes")
    (checked,) = _follow(new)
    assert checked.returncode == 1 and "task_description is empty" in checked.stdout

    # an empty taxonomy: the hint checks that same folder
    empty = tmp_path / "empty-taxonomy"
    empty.mkdir()
    nothing = _labdesk("generate", "--recipe", "tiny", "--taxonomy", str(empty))
    assert nothing.returncode == 1
    _follow(nothing)

    # removing a run without a terminal to ask in: the hint removes it
    run = RunPaths(workspace_home / "runs" / "old")
    run.root.mkdir(parents=True)
    kept = _labdesk("runs", "rm", "old")
    assert kept.returncode == 1 and run.root.is_dir()
    _follow(kept)
    assert not run.root.exists()


def test_a_run_in_use_is_refused_by_name_and_listed(workspace_home: Path) -> None:
    run = RunPaths(workspace_home / "runs" / "busy")
    with hold_run(run, "pytest"):
        refused = _labdesk("mix", "busy", "--recipe", "tiny")
        assert refused.returncode == 1
        assert f"run `busy` is in use by process {os.getpid()} (pytest)" in refused.stderr
        (listing,) = _follow(refused)
        assert "busy" in listing.stdout and f"process {os.getpid()}" in listing.stdout
        removing = _labdesk("runs", "rm", "busy", "--yes")
        assert removing.returncode == 1 and "in use" in removing.stderr
    assert _labdesk("runs", "rm", "busy", "--yes").returncode == 0


def test_mixing_refuses_leaves_without_data_and_says_what_to_run(workspace_home: Path) -> None:
    """Generation stopped after some leaves: mixing names the others instead of training on
    nothing for them (issue 16: `mix {"knowledge_1": 0, ...}`, then `done`)."""
    from labdesk.workspace import Workspace

    ws = Workspace.open()
    taxonomy = load_taxonomy(ws.ensure_taxonomy())
    run = RunPaths(ws.run_dir("partial"))
    skills = [leaf for leaf in taxonomy.leaves if leaf.kind != "knowledge"]
    write_seed_samples(run, skills)
    untrained = _labdesk("train", "partial", "--recipe", "tiny")
    assert untrained.returncode == 1 and "`labdesk mix partial`" in untrained.stderr
    (refused,) = _follow(untrained)  # `labdesk mix partial`: refused, naming the leaf
    knowledge = [leaf.path for leaf in taxonomy.leaves if leaf.kind == "knowledge"]
    assert refused.returncode == 1 and all(path in refused.stderr for path in knowledge)
    assert not run.mixed.exists()
    (generate,) = _printed_hints(refused)
    assert generate == "labdesk generate partial"  # run for real in tests/tui/test_shared_runs.py
    build_parser().parse_args(shlex.split(generate)[1:])
    allowed = _labdesk("mix", "partial", "--allow-missing", "--recipe", "tiny")
    assert allowed.returncode == 0, allowed.stderr
    assert run.phase_data("skills").is_file()


def test_a_leaf_the_judges_passed_nothing_of_is_skipped_where_the_recipe_says(
    workspace_home: Path,
) -> None:
    """The tiny recipe's `mix.leaves_without_data: skip` leaves out, with a warning, a leaf whose
    generation finished with no sample accepted (it refuses one never generated, above); with
    `refuse` the same leaf stops the mix, pointing at the judges' reasons."""
    from labdesk.workspace import Workspace

    ws = Workspace.open()
    taxonomy = load_taxonomy(ws.ensure_taxonomy())
    run = RunPaths(ws.run_dir("partial"))
    write_seed_samples(run, [leaf for leaf in taxonomy.leaves if leaf.kind != "knowledge"])
    knowledge = [leaf for leaf in taxonomy.leaves if leaf.kind == "knowledge"]
    for leaf in knowledge:  # every round done, every sample rejected
        write_jsonl(run.accepted(leaf.slug), [])
        write_json(run.leaf_manifest(leaf.slug), {"complete": True})
    refused = _labdesk("mix", "partial", "--recipe", "tiny", "--set=mix.leaves_without_data=refuse")
    assert refused.returncode == 1 and knowledge[0].path in refused.stderr
    assert "--preview 3" in refused.stderr and not run.mixed.exists()
    skipped = _labdesk("mix", "partial", "--recipe", "tiny")
    assert skipped.returncode == 0, skipped.stderr
    warning = f"no accepted samples (the judges passed none), left out: {knowledge[0].path}"
    assert warning in skipped.stdout + skipped.stderr
    assert run.phase_data("skills").is_file()
