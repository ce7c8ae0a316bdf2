"""Base vs tuned on a planted knowledge leaf: stories260K trained for real, exported, evaluated."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import NamedTuple

import pytest

from labdesk.errors import Cancelled
from labdesk.evaluate.report import Report
from labdesk.evaluate.runner import EvalModels, evaluate_run
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
    recipe = planted_recipe(student, epochs=4)
    train_run(run, recipe, student, check_memory=False)  # labdesk's own trainer (torch + peft)
    model = export_run(run, recipe, ws, student_dir=student)
    # The untuned student judges: its verdicts are noise, but they are real constrained output.
    models = EvalModels(Path(model.base_gguf), Path(model.gguf), Path(model.base_gguf))
    events: list[Event] = []
    report = evaluate_run(run, recipe, models, reporter=events.append)
    return Evaluated(ws, student, run, recipe, models, report, events)


def test_knowledge_training_shows_a_positive_delta(evaluated: Evaluated) -> None:
    (leaf,) = [row for row in evaluated.report.leaves if row.leaf == KNOWLEDGE_LEAF]
    assert leaf.metric == "accuracy" and len(leaf.items) == len(FACTS)
    assert leaf.base is not None and leaf.tuned is not None
    assert leaf.tuned >= 0.75 and leaf.delta is not None and leaf.delta > 0


def test_the_report_holds_the_answers_behind_every_score(evaluated: Evaluated) -> None:
    data = evaluated.report.to_dict()
    saved = (evaluated.run.evaluation / "report.json").read_text(encoding="utf-8")
    assert '"delta"' in saved
    rows = {row["leaf"]: row for row in data["leaves"]}
    for item in rows[KNOWLEDGE_LEAF]["items"]:
        for role in ("base", "tuned"):
            picked = item[role]
            assert picked["answer"] == item["options"][picked["choice"]]
            assert len(picked["scores"]) == len(item["options"])
            assert picked["correct"] == (picked["choice"] == item["answer_index"])
    skill = rows["compositional_skills/writing/rhyme"]
    assert skill["metric"] == "judge score"
    for item in skill["items"] + data["forgetting"]["items"]:
        for role in ("base", "tuned"):
            assert isinstance(item[role]["answer"], str)
            assert item[role]["score"] in range(1, 11) and item[role]["reason"] is not None
    assert len(data["forgetting"]["items"]) == evaluated.recipe.evaluate.forgetting_questions
    markdown = (evaluated.run.evaluation / "report.md").read_text(encoding="utf-8")
    assert "| knowledge/stories/town_facts | knowledge | accuracy |" in markdown
    for question, answer, _ in FACTS:
        assert f"**Q:** {question}" in markdown and f"{answer} (right)" in markdown


def test_a_second_evaluation_reuses_every_cached_answer(evaluated: Evaluated) -> None:
    records = evaluated.run.evaluation / "records.jsonl"
    before = len(read_jsonl(records))
    events: list[Event] = []
    again = evaluate_run(evaluated.run, evaluated.recipe, evaluated.models, reporter=events.append)
    assert len(read_jsonl(records)) == before
    assert not [e for e in events if e.kind == "progress"]  # nothing asked, chosen or judged
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
    # Multiple choice is deterministic, so the resumed report agrees with the uninterrupted one.
    knowledge = [row.to_dict() for row in resumed.leaves if row.kind == "knowledge"]
    assert knowledge == [
        row.to_dict() for row in evaluated.report.leaves if row.kind == "knowledge"
    ]
    assert all(item["tuned"]["answer"] is not None for row in resumed.rows() for item in row.items)


def test_evaluate_cli_prints_the_table_from_the_cached_evaluation(
    evaluated: Evaluated, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labdesk.cli.main import main

    monkeypatch.setenv("LABDESK_HOME", str(evaluated.ws.home))
    monkeypatch.setenv("COLUMNS", "200")
    sets = [*planted_overrides(evaluated.student, 4), f"judge={{path: '{evaluated.models.judge}'}}"]
    argv = ["evaluate", "planted", "--recipe", "tiny", *(x for s in sets for x in ("--set", s))]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (leaf,) = [row for row in evaluated.report.leaves if row.leaf == KNOWLEDGE_LEAF]
    assert KNOWLEDGE_LEAF in out and f"{leaf.tuned:.0%}" in out
    assert "report.md" in out
    improved = next(line for line in out.splitlines() if line.startswith("improved:"))
    assert KNOWLEDGE_LEAF in improved


def test_questions_too_long_for_the_context_are_reported_not_fatal(
    evaluated: Evaluated, tmp_path: Path
) -> None:
    from labdesk.evaluate.runner import NOT_ASKED
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
                    + [{"question": long_question, "answer": "On the mat."}]
                }
            ],
        },
    )
    report = evaluate_run(run, evaluated.recipe, evaluated.models)
    rows = {row.leaf: row for row in report.leaves}
    (skill,) = rows["compositional_skills/writing/long"].items
    assert skill["tuned"] == {"answer": NOT_ASKED, "score": None, "reason": None}
    knowledge = rows[KNOWLEDGE_LEAF]
    skipped = [i for i in knowledge.items if i["question"] == long_question]
    assert (
        skipped and skipped[0]["tuned"]["choice"] is None and skipped[0]["tuned"]["scores"] is None
    )
    assert knowledge.tuned is not None  # the items that fit are still scored
    assert "not scored" in (run.evaluation / "report.md").read_text(encoding="utf-8")
