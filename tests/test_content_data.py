"""The hand-written evaluation and training data keeps the promises its users rely on.

general_probe.json (forgetting), general_prompts.json (self-distillation replay),
kelderwick-probe.json (closed-book questions on the sample leaf) and bench/judge_set.json
(labelled pairs for the judges): sizes, ids, and the rules that keep each one honest, such as
no answer given away by its question and every knowledge passage really from the document.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from labdesk.resources import data_dir, package_file
from labdesk.train.replay import general_prompts

REPO = Path(__file__).resolve().parent.parent
LEAF = "knowledge/geography/islands/kelderwick"
FLAWS = {"unfaithful", "off_task", "cut_off", "copied", "not_standalone", "mismatched"}


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def _has(form: str, text: str) -> bool:
    """`form` occurs in `text` as whole words, case-insensitively (the probes' scoring rule)."""
    return re.search(rf"(?<!\w){re.escape(form)}(?!\w)", text, re.IGNORECASE) is not None


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _leaf(path: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        (data_dir("taxonomy") / path / "qna.yaml").read_text(encoding="utf-8")
    )
    return loaded


def _sample_doc(name: str) -> str:
    text = package_file("sample_docs", "kelderwick", name).read_text(encoding="utf-8")
    return " ".join(text.replace("*", "").split())


def test_general_probe_questions_have_answers_the_question_does_not_give_away() -> None:
    questions = _load(package_file("evaluate", "general_probe.json"))["questions"]
    assert len(questions) >= 120
    assert len({q["id"] for q in questions}) == len(questions)
    assert len({_norm(q["question"]) for q in questions}) == len(questions)
    for q in questions:
        assert q["topic"] and q["question"].endswith("?"), q["id"]
        assert q["answers"] and all(a.strip() for a in q["answers"]), q["id"]
        given_away = _words(q["question"]) & {w for a in q["answers"] for w in _words(a)}
        assert not given_away, (q["id"], given_away)


def test_replay_prompts_are_short_and_stay_off_the_probes() -> None:
    data = _load(package_file("train", "general_prompts.json"))
    prompts = general_prompts()
    probe = _load(package_file("evaluate", "general_probe.json"))["questions"]
    assert len(data["requests"]) >= 240 and len(data["questions"]) >= 120
    assert len({_norm(p) for p in prompts}) == len(prompts)
    # taken in turn: any number of prompts holds requests and questions alike
    requests, questions = data["requests"], data["questions"]
    assert prompts[:4] == [requests[0], questions[0], requests[1], questions[1]]
    asked = {_norm(q["question"]) for q in probe}
    for prompt in prompts:
        assert 0 < len(prompt.split()) < 30, prompt
        assert "kelderwick" not in prompt.lower(), prompt
        assert _norm(prompt) not in asked, prompt


def test_kelderwick_probe_is_answerable_from_the_document_and_unlike_the_seeds() -> None:
    probe = _load(package_file("sample_docs", "kelderwick-probe.json"))
    questions = probe["questions"]
    seeds = _leaf(LEAF)["seed_examples"]
    seed_questions = {_norm(qa["question"]) for s in seeds for qa in s["questions_and_answers"]}
    assert probe["leaf"] == LEAF
    assert len(questions) >= 32 and len({q["id"] for q in questions}) == len(questions)
    assert sum(not q["in_seeds"] for q in questions) >= 22
    for q in questions:
        document = _sample_doc(q["source"])
        assert _norm(q["question"]) not in seed_questions, q["id"]
        for fact in q["expect"]:
            assert any(_has(form, document) for form in fact), (q["id"], fact)
            assert not any(_has(form, q["question"]) for form in fact), (q["id"], fact)
    sources = Counter(q["source"] for q in questions)
    documents = {p.name for p in package_file("sample_docs", "kelderwick").glob("*.md")}
    assert set(sources) == documents


def test_judge_set_labels_are_consistent_and_rooted_in_the_sample_taxonomy() -> None:
    items = _load(REPO / "bench" / "judge_set.json")["items"]
    assert len({i["id"] for i in items}) == len(items)
    labels = Counter(i["label"] for i in items)
    flaws = Counter(i["flaw"] for i in items if i["label"] == "bad")
    assert labels["good"] >= 50 and labels["bad"] >= 100 and set(labels) == {"good", "bad"}
    assert set(flaws) == FLAWS and min(flaws.values()) >= 18

    outline = " ".join(_leaf(LEAF)["document_outline"].split())
    skill_tasks = {
        " ".join(_leaf(path)["task_description"].split())
        for path in (
            "compositional_skills/writing/freeform/haiku",
            "compositional_skills/writing/freeform/email_tone",
            "compositional_skills/extraction/grounded/meeting_action_items",
        )
    }
    document = " ".join(
        _sample_doc(p.name) for p in package_file("sample_docs", "kelderwick").glob("*.md")
    )
    for item in items:
        assert (item["label"] == "good") == (item["flaw"] is None), item["id"]
        assert item["question"].strip() and item["answer"].strip(), item["id"]
        if item["kind"] == "knowledge":
            assert item["task"] == outline, item["id"]
            assert item["passage"] and item["passage"] in document, item["id"]
        else:
            assert item["task"] in skill_tasks, item["id"]
            assert item["flaw"] != "not_standalone", item["id"]
            assert (item["kind"] == "grounded_skill") == bool(item["passage"]), item["id"]
            assert item["kind"] in {"freeform_skill", "grounded_skill"}, item["id"]
