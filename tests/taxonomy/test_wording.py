"""Schema errors in plain words, with upstream's verdict and places unchanged."""

from __future__ import annotations

import yaml

from labdesk.taxonomy import validate_text

SKILL = "compositional_skills/writing/odes/qna.yaml"


def _skill(seeds: list[dict[str, str]], **fields: object) -> str:
    data = {"version": 3, "created_by": "me", "task_description": "Write odes."} | fields
    data["seed_examples"] = seeds
    return yaml.safe_dump(data, sort_keys=False, width=200)


def _errors(text: str, path: str = SKILL) -> dict[str, str]:
    return {p.yaml_path: p.message for p in validate_text(text, path) if p.severity == "error"}


def seeds(n: int) -> list[dict[str, str]]:
    return [{"question": f"Write ode {i}.", "answer": f"An ode, number {i}."} for i in range(n)]


def test_too_few_seeds_says_how_many_of_how_many() -> None:
    assert _errors(_skill(seeds(4))) == {".seed_examples": "seed_examples: 4 of at least 5"}


def test_repeated_seeds_are_named_by_number() -> None:
    same = seeds(5)
    same[2] = dict(same[1])
    same[4] = dict(same[0])
    message = _errors(_skill(same))[".seed_examples"]
    assert message == "seeds 1 and 5 are the same; seeds 2 and 3 are the same"


def test_missing_empty_mistyped_and_unknown_fields() -> None:
    broken = seeds(5)
    broken[0]["answer"] = ""
    del broken[1]["question"]
    broken[2]["anwser"] = "typo"
    errors = _errors(_skill(broken, created_by=7))
    assert errors[".created_by"] == "created_by should be text, not the number 7"
    assert errors[".seed_examples[0].answer"] == "answer is empty"
    assert errors[".seed_examples[1]"] == "question is missing"
    assert errors[".seed_examples[2]"].startswith(
        "`anwser` (did you mean `answer`?): an unknown field in seed_examples item 3"
    )
    assert set(errors) == {
        ".created_by",
        ".seed_examples[0].answer",
        ".seed_examples[1]",
        ".seed_examples[2]",
    }


def test_a_knowledge_leaf_counts_its_pairs() -> None:
    seed = {
        "context": "Kelderwick is an island.",
        "questions_and_answers": [{"question": "Where?", "answer": "North."}] * 2,
    }
    text = yaml.safe_dump(
        {
            "version": 3,
            "created_by": "me",
            "domain": "geography",
            "document_outline": "An island.",
            "seed_examples": [seed] * 5,
            "document": {"repo": "https://x/y.git", "commit": "abc", "patterns": ["a.md"]},
        }
    )
    errors = _errors(text, "knowledge/geo/kelderwick/qna.yaml")
    assert errors[".seed_examples"] == "seeds 1, 2, 3, 4 and 5 are the same"
    assert errors[".seed_examples[0].questions_and_answers"] == ("Q&A pairs 1 and 2 are the same")
