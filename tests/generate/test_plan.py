"""Pure planning logic: held-out seeds, candidate counts, deterministic candidates, reports."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from labdesk.documents.facts import chunk_facts
from labdesk.errors import ConfigError
from labdesk.generate.pipelines import build_pipeline
from labdesk.generate.report import LeafReport
from labdesk.generate.runner import candidates_for
from labdesk.generate.selection import select_leaves, split_seeds
from labdesk.generate.steps import Write
from labdesk.generate.templates import template
from labdesk.recipes import GenerateSettings
from labdesk.resources import data_dir
from labdesk.taxonomy import Leaf, load_taxonomy


@pytest.fixture(scope="module")
def leaves() -> list[Leaf]:
    return load_taxonomy(data_dir("taxonomy")).leaves


def test_sample_taxonomy_has_every_kind(leaves: list[Leaf]) -> None:
    assert {leaf.kind for leaf in leaves} == {"knowledge", "freeform_skill", "grounded_skill"}


def test_held_out_split_is_stable_disjoint_and_keeps_one_seed(leaves: list[Leaf]) -> None:
    leaf = leaves[0]
    shown, held = split_seeds(leaf, 2, seed=42)
    assert (shown, held) == split_seeds(leaf, 2, seed=42)
    assert len(held) == 2 and len(shown) == len(leaf.seeds) - 2
    assert not set(map(id, shown)) & set(map(id, held))
    shown, held = split_seeds(leaf, 99, seed=42)
    assert len(shown) == 1 and len(held) == len(leaf.seeds) - 1


def test_candidate_count_follows_observed_yield() -> None:
    assert candidates_for(10, [], 10, 2.0, 0) == 20
    earlier = [{"metadata": {"type": "qa", "step": "judge_pair"}}] * 15 + [
        {"metadata": {"type": "qa"}}
    ] * 5
    # yield 5/20 → 4 candidates per missing sample, x1.25 margin
    assert candidates_for(4, earlier, 10, 2.0, 1) == 20
    # nothing accepted yet: capped at 4x overgenerate, and at 4x the target in one round
    assert candidates_for(5, earlier[:15], 10, 2.0, 1) == 40


def test_candidates_are_deterministic_and_show_only_given_seeds(leaves: list[Leaf]) -> None:
    settings = GenerateSettings(examples_per_prompt=2)
    for leaf in leaves:
        if leaf.kind == "knowledge":
            continue
        shown, held = split_seeds(leaf, 1, seed=42)
        pipeline = build_pipeline(leaf, shown, [], settings)
        first = pipeline.candidates(1, 6)
        again = pipeline.candidates(1, 6)
        assert [(c.id, c.examples) for c in first] == [(c.id, c.examples) for c in again]
        assert len({c.id for c in first}) == 6
        # each candidate draws its own examples: the round does not share one draw
        assert len({tuple(map(id, c.examples)) for c in first}) > 1
        for candidate in first:
            assert len(candidate.examples) == 2
            assert all(seed in shown for seed in candidate.examples)
            assert not any(seed in held for seed in candidate.examples)


def test_every_step_template_exists(leaves: list[Leaf]) -> None:
    for leaf in leaves:
        pipeline = build_pipeline(leaf, list(leaf.seeds), [], GenerateSettings())
        for step in pipeline.steps:
            if isinstance(step, Write):
                for name in step.templates.values():
                    assert template(name).template.strip()


def test_select_leaves_by_path_and_folder(leaves: list[Leaf]) -> None:
    assert select_leaves(leaves, None) == leaves
    skills = select_leaves(leaves, ["compositional_skills/writing"])
    assert skills and all(leaf.path.startswith("compositional_skills/writing/") for leaf in skills)
    with pytest.raises(ConfigError, match="no leaf 'nope'"):
        select_leaves(leaves, ["nope"])


def test_report_explains_an_empty_leaf() -> None:
    def rejected(step: str, reason: str, question: str) -> dict[str, object]:
        return {
            "messages": [{}, {"content": question}, {"content": ""}],
            "metadata": {"type": "qa", "step": step, "reason": reason},
        }

    report = LeafReport("a/b", "freeform_skill", "generated", target=3)
    report.count(
        [],
        [
            rejected("judge_question", "not good_question: unclear", "Tell me"),
            rejected("judge_question", "not good_question: off task", "Fly?"),
            rejected("dedup", "near-duplicate of seed 1 (similarity 0.97)", "Write a haiku"),
        ],
    )
    assert not report.reached and report.generated == 3
    text = report.explain()
    assert text.startswith("judge_question rejected 2 (e.g. not good_question: unclear")
    assert "dedup rejected 1" in text and "'Write a haiku'" in text
    again = LeafReport.from_json(report.to_json())
    assert replace(again, samples=[]) == replace(report, samples=[])


def test_replies_lose_lone_surrogates_before_reaching_utf8_files() -> None:
    from labdesk.generate.leafrun import _clean

    text = json.loads('"tide \\udfff keeper \\ud800"')
    cleaned = _clean(text)
    assert cleaned == "tide ? keeper ?"
    cleaned.encode("utf-8")


def test_knowledge_candidates_cover_every_fact_before_any_twice(leaves: list[Leaf]) -> None:
    from labdesk.documents.chunking import Chunk

    leaf = next(x for x in leaves if x.kind == "knowledge")
    text = "# Isle\n\nThe isle has three wells. Its ferry runs twice a day.\n\nGulls nest on the cliffs."
    chunk = Chunk("isle.md", 0, "Isle", text, 20, 0, len(text))
    pipeline = build_pipeline(leaf, list(leaf.seeds), [chunk], GenerateSettings())
    assert [f.text for f in pipeline.facts] == [
        "The isle has three wells.",
        "Its ferry runs twice a day.",
        "Gulls nest on the cliffs.",
    ]
    assert pipeline.target == 3 * GenerateSettings().questions_per_fact
    first = pipeline.candidates(0, 4)
    asked = [c.fact.text for c in first if c.type == "qa" and c.fact]
    assert asked[:3] == [f.text for f in pipeline.facts] and asked[3] == asked[0]
    assert all(c.fields["answer"] == c.fact.text for c in first if c.fact)  # extractive answers
    # a later round asks first about the facts with the fewest accepted questions
    accepted = [
        {"metadata": {"type": "qa", "fact": {"text": "The isle has three wells."}}},
        {"metadata": {"type": "qa", "fact": {"text": "Gulls nest on the cliffs."}}},
    ]
    later = pipeline.candidates(1, 1, accepted)
    assert later[0].fact is not None and later[0].fact.text == "Its ferry runs twice a day."


def test_gapped_cloze_questions_join_the_full_ones_in_round_zero(leaves: list[Leaf]) -> None:
    from labdesk.documents.sample import sample_facts
    from labdesk.generate.cloze import cloze_questions, word_counts

    leaf = next(x for x in leaves if x.kind == "knowledge")
    chunks = list({f.chunk.document: f.chunk for f in sample_facts()}.values())

    def cloze(augmentations: list[str]) -> list[str]:
        settings = GenerateSettings(augmentations=augmentations)
        pipeline = build_pipeline(leaf, list(leaf.seeds), chunks, settings)
        made = pipeline.candidates(0, 0)
        return [c.fields["question"] for c in made if c.type == "cloze"]

    full, gapped = cloze(["cloze"]), cloze(["cloze_gapped"])
    counts = word_counts([f for c in chunks for f in chunk_facts(c)])
    assert set(full) < set(gapped) and len(gapped) > 3 * len(full)
    assert gapped == [
        q for c in chunks for f in chunk_facts(c) for q in cloze_questions(f, counts, gapped=True)
    ]
