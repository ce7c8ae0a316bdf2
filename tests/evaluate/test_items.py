from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.errors import LabdeskError
from labdesk.evaluate.items import build_items, general_items, items_for_run, read_heldout
from labdesk.fileio import write_json
from labdesk.runs import RunPaths
from tests.evaluate.planted import FACTS, write_run_inputs


def test_heldout_seeds_become_multiple_choice_and_open_items(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    write_run_inputs(run)
    leaves = read_heldout(run)
    assert [(leaf.path, leaf.kind) for leaf in leaves] == [
        ("compositional_skills/writing/rhyme", "freeform_skill"),
        ("knowledge/stories/town_facts", "knowledge"),
    ]
    items = build_items(leaves)
    choice = [i for i in items if i.kind == "knowledge"]
    assert len(choice) == len(FACTS)
    for item, (question, answer, _) in zip(choice, FACTS, strict=True):
        assert item.question == question and item.options[item.answer_index] == answer
        # The distractors are the leaf's other answers: same topic, one right option.
        assert sorted(item.options) == sorted(a for _, a, _ in FACTS)
    assert len({i.answer_index for i in choice}) > 1  # options are shuffled, not always first
    assert build_items(leaves) == items  # deterministic
    (skill,) = [i for i in items if i.kind == "skill"]
    assert skill.reference == "The cat sat on the mat."


def test_a_lone_knowledge_answer_borrows_distractors_from_other_leaves(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    write_run_inputs(run)
    write_json(
        run.heldout("knowledge__solo"),
        {
            "leaf": "knowledge/solo",
            "kind": "knowledge",
            "seeds": [{"question": "Q?", "answer": "Only."}],
        },
    )
    solo = [i for i in build_items(read_heldout(run)) if i.leaf == "knowledge/solo"]
    assert len(solo) == 1 and len(solo[0].options) == 4
    assert "Only." in solo[0].options


def test_general_questions_are_bundled() -> None:
    items = general_items(3)
    assert len(items) == 3 and all(
        i.kind == "general" and i.question.endswith(("?", ".")) for i in items
    )


def test_a_run_without_heldout_seeds_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LabdeskError, match="no held-out seed questions") as info:
        items_for_run(RunPaths(tmp_path / "run"), 2)
    assert "held_out_seeds" in str(info.value)


def test_a_damaged_heldout_file_names_the_file(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    run.generated.mkdir(parents=True)
    run.heldout("x").write_text("[{", encoding="utf-8")
    with pytest.raises(LabdeskError, match="cannot be read") as info:
        read_heldout(run)
    assert "x.heldout.json" in str(info.value)


def test_heldout_as_generate_writes_it_takes_path_and_kind_from_the_samples(tmp_path: Path) -> None:
    from labdesk.fileio import write_jsonl

    run = RunPaths(tmp_path / "run")
    slug = "compositional_skills__grounded__summarize"
    write_json(
        run.heldout(slug),
        [{"context": "A long text.", "qa": [{"question": "Sum up?", "answer": "Short."}]}],
    )
    write_jsonl(
        run.accepted(slug),
        [
            {
                "messages": [],
                "metadata": {
                    "leaf": "compositional_skills/grounded/summarize",
                    "kind": "grounded_skill",
                },
            }
        ],
    )
    (leaf,) = read_heldout(run)
    assert (leaf.path, leaf.kind) == ("compositional_skills/grounded/summarize", "grounded_skill")
    (item,) = build_items([leaf])
    assert item.kind == "skill" and item.context == "A long text." and item.reference == "Short."
