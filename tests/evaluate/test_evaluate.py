"""Base vs tuned on a planted knowledge leaf: stories260K trained for real, exported, evaluated
closed-book (the question alone; the answer must name the fact)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import NamedTuple

import pytest

from labdesk.errors import Cancelled
from labdesk.evaluate.report import ACCURACY, GENERAL, LIKELIHOOD, NOT_ASKED, UNCLEAR, Report
from labdesk.evaluate.runner import EvalModels, evaluate_run
from labdesk.evaluate.scoring import is_right
from labdesk.events import Event
from labdesk.export.run_export import export_run
from labdesk.fileio import read_jsonl
from labdesk.recipes import Recipe
from labdesk.runs import RunPaths
from labdesk.workspace import Workspace
from tests.evaluate.planted import (
    FACTS,
    KNOWLEDGE_LEAF,
    make_student,
    planted_overrides,
    planted_recipe,
    write_run_inputs,
)


class Evaluated(NamedTuple):
    ws: Workspace
    student: Path
    run: RunPaths
    recipe: Recipe
    models: EvalModels
    report: Report
    events: list[Event]


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Evaluated:
    from labdesk.train.phases import train_run
    from tests.conftest import SHARED_FIXTURES

    stories = SHARED_FIXTURES / "stories260K" / "hf"
    if not stories.is_dir():
        pytest.skip(f"stories260K fixture not found at {stories}")
    root = tmp_path_factory.mktemp("planted")
    student = make_student(stories, root / "student")
    ws = Workspace.open(root / "ws")
    run = RunPaths(ws.run_dir("planted"))
    write_run_inputs(run)
    recipe = planted_recipe(student, epochs=16)
    train_run(run, recipe, student, check_memory=False)  # labdesk's own trainer (torch + peft)
    model = export_run(run, recipe, ws, student_dir=student)
    models = EvalModels(Path(model.base_gguf), Path(model.merged_gguf))
    events: list[Event] = []
    report = evaluate_run(run, recipe, models, reporter=events.append)
    return Evaluated(ws, student, run, recipe, models, report, events)


def test_knowledge_training_shows_a_positive_delta(evaluated: Evaluated) -> None:
    (leaf,) = [row for row in evaluated.report.leaves if row.leaf == KNOWLEDGE_LEAF]
    assert leaf.metric == ACCURACY and len(leaf.items) == len(FACTS)
    assert leaf.base is not None and leaf.tuned is not None
    assert leaf.tuned.value >= 0.75 and leaf.delta is not None and leaf.delta > 0
    assert leaf.tuned.n == len(FACTS) and leaf.tuned.low <= leaf.tuned.value <= leaf.tuned.high


def test_the_report_holds_the_answers_behind_every_score(evaluated: Evaluated) -> None:
    data = evaluated.report.to_dict()
    saved = (evaluated.run.evaluation / "report.json").read_text(encoding="utf-8")
    assert '"delta"' in saved and '"verdict"' in saved
    rows = {row["leaf"]: row for row in data["leaves"]}
    expected = {q: a for q, a, _ in FACTS}
    for item in rows[KNOWLEDGE_LEAF]["items"]:
        # the name the reference adds to the question is what a right answer must say
        assert item["expect"] and item["expect"] in expected[item["question"]]
        for role in ("base", "tuned"):
            answer = item[role]["answer"]
            assert isinstance(answer, str)
            assert item[role]["right"] == is_right(answer, [[item["expect"]]])
    skill = rows["compositional_skills/writing/rhyme"]
    assert skill["metric"] == LIKELIHOOD
    for item in skill["items"]:
        for role in ("base", "tuned"):
            assert item[role]["likelihood"] < 0  # a mean log-probability
    assert data["forgetting"]["metric"] == GENERAL
    assert len(data["forgetting"]["items"]) == evaluated.recipe.evaluate.general_questions
    markdown = (evaluated.run.evaluation / "report.md").read_text(encoding="utf-8")
    assert f"| {KNOWLEDGE_LEAF} | {ACCURACY} |" in markdown
    assert "## Before and after" in markdown and data["examples"]
    for question, _, _ in FACTS:
        assert f"**Q:** {question}" in markdown
    assert "- **tuned:** right:" in markdown


def test_a_second_evaluation_reuses_every_cached_answer(evaluated: Evaluated) -> None:
    records = evaluated.run.evaluation / "records.jsonl"
    before = len(read_jsonl(records))
    events: list[Event] = []
    again = evaluate_run(evaluated.run, evaluated.recipe, evaluated.models, reporter=events.append)
    assert len(read_jsonl(records)) == before
    assert not [e for e in events if e.kind == "progress"]  # nothing asked or scored again
    assert again.to_dict() == evaluated.report.to_dict()


def test_a_cancelled_evaluation_keeps_its_answers_and_resumes(
    evaluated: Evaluated, tmp_path: Path
) -> None:
    run = RunPaths(tmp_path / "again")
    shutil.copytree(evaluated.run.generated, run.generated)
    cancel = threading.Event()

    def stop_after_first(event: Event) -> None:
        if event.kind == "progress":
            cancel.set()

    with pytest.raises(Cancelled):
        evaluate_run(
            run, evaluated.recipe, evaluated.models, reporter=stop_after_first, cancel=cancel
        )
    kept = len(read_jsonl(run.evaluation / "records.jsonl"))
    assert kept >= 1 and not (run.evaluation / "report.json").exists()

    resumed = evaluate_run(run, evaluated.recipe, evaluated.models)
    assert len(read_jsonl(run.evaluation / "records.jsonl")) > kept
    # Greedy answers are deterministic, so the resumed report agrees with the uninterrupted one.
    knowledge = [row.to_dict() for row in resumed.leaves if row.kind == "knowledge"]
    assert knowledge == [
        row.to_dict() for row in evaluated.report.leaves if row.kind == "knowledge"
    ]
    for row in resumed.rows():
        value = "likelihood" if row.metric == LIKELIHOOD else "answer"
        assert all(item["tuned"][value] is not None for item in row.items)


def test_evaluate_cli_prints_the_table_from_the_cached_evaluation(
    evaluated: Evaluated, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labdesk.cli.main import main

    monkeypatch.setenv("LABDESK_HOME", str(evaluated.ws.home))
    monkeypatch.setenv("COLUMNS", "200")
    sets = planted_overrides(evaluated.student, 16)
    argv = ["evaluate", "planted", "--recipe", "tiny", *(x for s in sets for x in ("--set", s))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (leaf,) = [row for row in evaluated.report.leaves if row.leaf == KNOWLEDGE_LEAF]
    assert leaf.tuned is not None
    assert KNOWLEDGE_LEAF in out and f"{leaf.tuned.value:.0%}" in out
    assert "report.md" in out
    # four planted facts cannot show a change beyond chance (a sign test needs six items)
    assert leaf.verdict == UNCLEAR
    unclear = next(line for line in out.splitlines() if line.startswith("no clear change"))
    assert KNOWLEDGE_LEAF in unclear
    assert next(line for line in out.splitlines() if line.startswith("improved:")).endswith("none")


def test_evaluate_on_a_full_disk_is_one_clear_error(
    evaluated: Evaluated, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """/dev/full answers the first answer's record with a real ENOSPC from the kernel."""
    from labdesk.cli.main import main

    copy = RunPaths(evaluated.ws.run_dir("fulldisk"))
    shutil.copytree(evaluated.run.root, copy.root, ignore=shutil.ignore_patterns("evaluate"))
    records = copy.evaluation / "records.jsonl"
    records.parent.mkdir()
    records.symlink_to("/dev/full")
    monkeypatch.setenv("LABDESK_HOME", str(evaluated.ws.home))
    sets = planted_overrides(evaluated.student, 16)
    argv = ["evaluate", "fulldisk", "--recipe", "tiny", *(x for s in sets for x in ("--set", s))]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"{records}: the disk is full" in " ".join(err.split())
    assert "GiB free in" in err and "Traceback" not in err
    assert not (copy.evaluation / "report.json").exists()


def test_questions_too_long_for_the_context_are_reported_not_fatal(
    evaluated: Evaluated, tmp_path: Path
) -> None:
    from labdesk.fileio import write_json

    long_question = ("Where did the cat sit? " + "The cat sat on the mat. " * 250).strip()
    run = RunPaths(tmp_path / "long")
    write_json(
        run.heldout("compositional_skills__writing__long"),
        [{"question": long_question, "answer": "On the mat."}],
    )
    write_json(
        run.heldout("knowledge__stories__town_facts"),
        {
            "leaf": KNOWLEDGE_LEAF,
            "kind": "knowledge",
            "seeds": [
                {
                    "qa": [{"question": q, "answer": a} for q, a, _ in FACTS[:2]]
                    + [{"question": long_question, "answer": "Tom saw it on the mat."}]
                }
            ],
        },
    )
    report = evaluate_run(run, evaluated.recipe, evaluated.models)
    rows = {row.leaf: row for row in report.leaves}
    (skill,) = rows["compositional_skills/writing/long"].items
    assert skill["tuned"] == {"likelihood": None}
    assert rows["compositional_skills/writing/long"].tuned is None
    knowledge = rows[KNOWLEDGE_LEAF]
    (skipped,) = [i for i in knowledge.items if i["question"] == long_question]
    assert skipped["tuned"] == {"answer": NOT_ASKED, "right": False}
    assert knowledge.tuned is not None and knowledge.tuned.n == 2  # the items that fit are scored
    markdown = (run.evaluation / "report.md").read_text(encoding="utf-8")
    assert "not scored: the question does not fit" in markdown


def test_run_and_evaluate_print_the_evaluation_the_same_way(
    evaluated: Evaluated, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`labdesk run` prints its summary's evaluation with `labdesk evaluate`'s renderer."""
    from labdesk.cli import evaluate as evaluate_cli
    from labdesk.cli import run as run_cli
    from labdesk.flow import FlowResult, summarize

    monkeypatch.setenv("COLUMNS", "200")
    evaluate_cli._print(evaluated.report)
    alone = capsys.readouterr().out
    run_cli._print(FlowResult(evaluated.run, [], summarize(evaluated.run, evaluated.ws)))
    in_run = capsys.readouterr().out
    table = [line for line in alone.splitlines() if KNOWLEDGE_LEAF.split("/")[-1] in line]
    assert table and all(line in in_run for line in table)
    assert "before and after" in alone and "before and after" in in_run
