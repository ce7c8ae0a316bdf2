from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.errors import ConfigError, LabdeskError
from labdesk.evaluate.items import (
    HeldOutLeaf,
    build_items,
    general_items,
    items_for_run,
    key_terms,
    probe_items,
    read_heldout,
)
from labdesk.fileio import write_json
from labdesk.runs import RunPaths
from tests.evaluate.planted import write_run_inputs


def test_heldout_seeds_become_closed_book_and_reference_items(tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    write_run_inputs(run)
    leaves = read_heldout(run)
    assert [(leaf.path, leaf.kind) for leaf in leaves] == [
        ("compositional_skills/writing/rhyme", "freeform_skill"),
        ("knowledge/stories/town_facts", "knowledge"),
    ]
    items = build_items(leaves)
    closed = [i for i in items if i.kind == "knowledge"]
    assert [(i.question, i.expect) for i in closed] == [
        ("Who is Tim's best friend?", (("Ben",),)),
        ("What is the name of Max's dog?", (("Spot",),)),
        ("Who gave Lily a red ball?", (("Mom",),)),
        ("What is the big cat called?", (("Tom",),)),
    ]
    assert all(i.context is None for i in closed)  # closed-book: the passage is never shown
    assert build_items(leaves) == items  # deterministic
    (skill,) = [i for i in items if i.kind == "skill"]
    assert skill.reference == "The cat sat on the mat."


def test_key_terms_are_what_the_answer_adds_to_the_question() -> None:
    question = "How many steps lead up the Gullstone lighthouse?"
    answer = "The Gullstone lighthouse has 136 steps, built by Agnes Marlowe in 1871."
    assert key_terms(answer, question) == (("136",), ("Agnes Marlowe",), ("1871",))
    # nothing to check (no name or number): no closed-book item rather than an unfair one
    leaf = HeldOutLeaf("knowledge/x", "knowledge", (("Is it old?", "Yes, very old.", None),))
    assert build_items([leaf]) == []
    # a long reference: half its terms will do
    (item,) = build_items([HeldOutLeaf("knowledge/x", "knowledge", ((question, answer, None),))])
    assert item.need == 2


def test_probe_files_give_closed_book_items(tmp_path: Path) -> None:
    items = probe_items("labdesk:sample_docs/kelderwick-probe.json")
    assert len(items) == 50 and all(i.kind == "knowledge" and i.expect for i in items)
    bad = tmp_path / "probe.json"
    bad.write_text('{"questions": []}', encoding="utf-8")
    with pytest.raises(ConfigError, match="probe file cannot be read") as info:
        probe_items("probe.json", tmp_path)
    assert str(bad) in str(info.value)


def test_general_questions_are_bundled() -> None:
    items = general_items(3)
    assert len(items) == 3 and all(
        i.kind == "general" and i.question.endswith(("?", ".")) and i.expect for i in items
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
