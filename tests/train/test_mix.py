from __future__ import annotations

import json
from pathlib import Path

import pytest

from labdesk.errors import ConfigError
from labdesk.fileio import read_jsonl, write_jsonl
from labdesk.recipes import MixSettings
from labdesk.runs import RunPaths
from labdesk.train.mix import mix, mix_run
from tests.train.helpers import knowledge_samples, sample, skill_samples, tiny_recipe


def test_composition_follows_the_recipe_ratios() -> None:
    settings = MixSettings(
        seed=3, knowledge_replay=0.5, skills_knowledge_replay=0.25, skills_per_leaf=7
    )
    general = [sample("x", "chat", f"hi {i}", "hello", f"g{i}") for i in range(3)]
    own = [sample("self", "replay", f"q {i}", f"a {i}", f"r{i}", "self_replay") for i in range(50)]
    phases, comp = mix(knowledge_samples(4) + skill_samples(), settings, "SYS", general, own)
    n1 = comp.count("knowledge_1", "knowledge closed-book")
    assert n1 == 21  # 20 Q&A + 1 summary, the question alone
    assert comp.count("knowledge_2", "replay of knowledge_1") == round(0.5 * n1)
    assert comp.count("knowledge_2", "knowledge among distractors") == 20
    chunks = {
        (r["metadata"]["chunk"]["document"], r["metadata"]["chunk"]["index"])
        for r in knowledge_samples()
    }
    assert comp.count("knowledge_2", "document text") == len(chunks)
    for phase in ("knowledge_1", "knowledge_2", "skills"):  # the base's own answers everywhere
        rest = comp.total(phase) - comp.count(phase, "self-distillation replay")
        assert comp.count(phase, "self-distillation replay") == round(
            settings.self_replay_share * rest
        )
    assert comp.count("skills", "skills (2 leaves)") == 2 * 7
    assert comp.count("skills", "replay of knowledge") == round(0.25 * n1)
    assert comp.count("skills", "general replay set") == 3
    for phase, rows in phases.items():
        assert len(rows) == comp.total(phase)
        for row in rows:
            assert row["messages"][0] == {"role": "system", "content": "SYS"}
            assert [m["role"] for m in row["messages"]][1:] == ["user", "assistant"]
    # each skill leaf is resampled to exactly its target
    leaves = [
        r["metadata"]["leaf"] for r in phases["skills"] if r["metadata"]["kind"] != "knowledge"
    ]
    assert leaves.count("compositional_skills/writing/rhyme") == 7
    # the summary trains on its whole text, Q&A only on answers
    kinds = {r["metadata"]["type"]: r["metadata"]["train_on"] for r in phases["knowledge_1"]}
    assert kinds == {"qa": "assistant", "summary": "all", "self_replay": "assistant"}


def test_long_samples_hide_the_relevant_chunk_among_distractors() -> None:
    phases, _ = mix(knowledge_samples(), MixSettings(distractors=2, knowledge_replay=0.0), "S")
    long_rows = [r for r in phases["knowledge_2"] if r["metadata"]["type"] == "qa"]
    assert long_rows
    for row in long_rows:
        prompt = row["messages"][1]["content"]
        assert prompt.count("Document ") == 3
        assert row["metadata"]["chunk"]["text"] in prompt


def test_same_seed_same_mix_and_atomic_files(run_paths: RunPaths) -> None:
    recipe = tiny_recipe(Path("."))
    events = []
    comp = mix_run(run_paths, recipe.mix, recipe.system_prompt, events.append)
    first = {
        p: read_jsonl(run_paths.phase_data(p)) for p in ("knowledge_1", "knowledge_2", "skills")
    }
    assert [len(v) for v in first.values()] == [comp.total(p) for p in first]
    assert json.loads(run_paths.composition.read_text()) == comp.to_json()
    mix_run(run_paths, recipe.mix, recipe.system_prompt)
    again = {p: read_jsonl(run_paths.phase_data(p)) for p in first}
    assert again == first
    assert not list(run_paths.mixed.glob(".*tmp"))  # no temp files left behind
    # rejected samples never reach the mix
    assert all(r["metadata"]["id"] != "r" for rows in first.values() for r in rows)
    assert events[-1].kind == "done"


def test_bad_inputs_are_clear_errors(run_paths: RunPaths, tmp_path: Path) -> None:
    recipe = tiny_recipe(Path("."))
    with pytest.raises(ConfigError, match="replay set"):
        mix_run(
            run_paths, recipe.mix.model_copy(update={"replay_set": str(tmp_path / "no.jsonl")}), "S"
        )
    broken = tmp_path / "bad.jsonl"
    write_jsonl(broken, [{"text": "no messages"}])
    with pytest.raises(ConfigError) as info:
        mix_run(run_paths, recipe.mix.model_copy(update={"replay_set": str(broken)}), "S")
    assert info.value.where == f"{broken}:1"
    with pytest.raises(ConfigError, match="no accepted samples"):
        mix_run(RunPaths(tmp_path / "empty"), recipe.mix, "S")
