"""The editor's qna.yaml model: untouched files keep their bytes, edits keep the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labdesk.resources import data_dir
from labdesk.taxonomy import new_leaf, validate_text
from labdesk.tui.qna_file import QAForm, QnaFile, SeedForm, parse_yq, yq_path


def sample_files() -> list[Path]:
    return sorted(data_dir("taxonomy").rglob("qna.yaml"))


@pytest.mark.parametrize("path", sample_files(), ids=lambda p: p.parent.name)
def test_untouched_sample_leaf_saves_byte_for_byte(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    qna = QnaFile.parse(text, knowledge="knowledge" in path.parts)
    qna.apply(qna.form())
    assert qna.dump() == text


def test_real_files_round_trip_untouched_and_keep_everything_else_on_edit(
    shared_fixtures: Path,
) -> None:
    files = sorted(
        p
        for p in (shared_fixtures / "instructlab-taxonomy" / "files").rglob("qna.yaml")
        if p.is_file()
    )[:300]
    eligible = kept = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        knowledge = "questions_and_answers" in text
        try:
            original = yaml.safe_load(text)
            qna = QnaFile.parse(text, knowledge=knowledge)
        except Exception:
            continue  # broken YAML is the validator's business, not the editor's
        form = qna.form()
        qna.apply(form)
        assert qna.dump() == text, path
        if not form.seeds or not isinstance(original, dict):
            continue
        form.seeds[0].qa[0].answer = "A new answer\nover two lines"
        qna.apply(form)
        reread = yaml.safe_load(qna.dump())
        target = original["seed_examples"][0]
        if knowledge:
            target = target["questions_and_answers"][0]
        target["answer"] = "A new answer\nover two lines\n"
        eligible += 1
        kept += reread == original
    # ruamel re-emits a few exotic escapes (e.g. `\\'` in double quotes) differently; nearly
    # every edited file must come through with everything else unchanged
    assert eligible > 200 and kept >= 0.9 * eligible, (kept, eligible)


def test_edit_keeps_comments_key_order_and_writes_literal_blocks() -> None:
    text = (
        "# a comment the author wrote\n"
        "created_by: someone\n"
        "version: 3\n"
        "task_description: Say hello.\n"
        "seed_examples:\n"
        "  - question: Hi?  # inline comment\n"
        "    answer: Hello.\n"
        "  - question: Hey?\n"
        "    answer: Hello there.\n"
    )
    qna = QnaFile.parse(text, knowledge=False)
    form = qna.form()
    form.seeds[1].qa[0].answer = "Hello,\nfriend."
    form.seeds.append(SeedForm(qa=[QAForm("Yo?", "Hi.")]))
    qna.apply(form)
    out = qna.dump()
    assert out.startswith("# a comment the author wrote\ncreated_by: someone\nversion: 3\n")
    assert "question: Hi?  # inline comment" in out
    assert "    answer: |\n      Hello,\n      friend.\n" in out
    assert yaml.safe_load(out)["seed_examples"][2] == {"question": "Yo?", "answer": "Hi."}


def skeleton(kind: str, tmp_path: Path) -> tuple[QnaFile, str]:
    """The core's new-leaf skeleton, read the way the editor reads it."""
    file = new_leaf(kind, "t/leaf", tmp_path)
    rel = file.relative_to(tmp_path).as_posix()
    return QnaFile.read(file, knowledge=kind == "knowledge"), rel


def test_reordering_and_removing_seeds(tmp_path: Path) -> None:
    qna, _ = skeleton("freeform_skill", tmp_path)
    form = qna.form()
    for i, seed in enumerate(form.seeds):
        seed.qa[0] = QAForm(f"q{i}", f"a{i}")
    form.seeds[0], form.seeds[1] = form.seeds[1], form.seeds[0]
    del form.seeds[4]
    qna.apply(form)
    seeds = yaml.safe_load(qna.dump())["seed_examples"]
    assert [s["question"] for s in seeds] == ["q1", "q0", "q2", "q3"]


@pytest.mark.parametrize("kind", ["knowledge", "freeform_skill", "grounded_skill"])
def test_skeletons_fill_in_and_keep_their_guiding_comments(kind: str, tmp_path: Path) -> None:
    qna, rel = skeleton(kind, tmp_path)
    assert any(p.severity == "error" for p in validate_text(qna.dump(), rel))
    form = qna.form()
    for path in form.field_paths():
        form.set(path, "x")
    assert all(form.get(path) == "x" for path in form.field_paths())
    qna.apply(form)
    out = qna.dump()
    assert "# your GitHub user name" in out
    assert yaml.safe_load(out)["created_by"] == "x"


def test_yq_paths_round_trip() -> None:
    path = ("seed_examples", 2, "questions_and_answers", 0, "answer")
    assert yq_path(path) == ".seed_examples[2].questions_and_answers[0].answer"
    assert parse_yq(yq_path(path)) == path
    assert parse_yq(".") == ()
