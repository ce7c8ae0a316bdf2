"""It teaches: SmolLM2-135M-Instruct, trained briefly by labdesk on facts of the sample knowledge
leaf's lighthouse document, answers closed-book questions about them that the base model misses.

The training data has the shape the knowledge pipeline writes: a question about one fact,
answered by the fact's own sentence, several questions per fact. It was written for this test
the way the teacher writes it. The questions asked afterwards come from the packaged Kelderwick
probe and are worded unlike the training questions; the answer is scored by the names and
numbers it must state. The chain is labdesk's own: trainer → export (merged GGUF at the base's
precision) → evaluation in the engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labdesk.evaluate.runner import EvalModels, evaluate_run
from labdesk.export.run_export import export_run
from labdesk.fileio import write_json, write_jsonl
from labdesk.recipes import load_recipe
from labdesk.resources import package_file
from labdesk.runs import RunPaths
from labdesk.train.phases import train_run
from labdesk.workspace import Workspace

pytestmark = pytest.mark.slow

LEAF = "knowledge/geography/islands/kelderwick"
SYSTEM = "You are a helpful assistant."
TRAINING = {
    "Gullstone lighthouse was built between 1868 and 1871 to a design by the engineer Agnes "
    "Marlowe.": [
        "Who designed Gullstone lighthouse?",
        "When was Gullstone lighthouse built, and by whose design?",
        "Which engineer is Gullstone lighthouse the work of?",
    ],
    "A spiral staircase of 136 steps leads up to the lantern room of Gullstone lighthouse.": [
        "How many steps lead up to the lantern room of Gullstone lighthouse?",
        "What is inside the tower of Gullstone lighthouse?",
        "How does one climb to the top of Gullstone lighthouse?",
    ],
    "The Gullstone foghorn, nicknamed the Old Cow by the islanders, was switched off in 2005.": [
        "What did the islanders call the foghorn of Gullstone lighthouse?",
        "When did the Gullstone foghorn fall silent?",
        "What happened to the foghorn at Gullstone lighthouse?",
    ],
    "Gullstone lighthouse burned paraffin until 1954, and since 1998 it has worked "
    "automatically, without a keeper.": [
        "When was Gullstone lighthouse converted to electricity?",
        "Does Gullstone lighthouse still have a keeper?",
        "How has the light at Gullstone been powered over the years?",
    ],
    "Ruth Abernethy, keeper of Gullstone lighthouse, recorded forty-three bird species from "
    "its gallery.": [
        "Who is the best remembered keeper of Gullstone lighthouse?",
        "What did the keeper Ruth Abernethy record from the gallery?",
        "How many kinds of birds are in the notebooks kept at Gullstone lighthouse?",
    ],
}
# Probe questions on exactly these facts (the probe file holds 50 over the whole leaf).
ASKED = {
    "Which engineer drew up the plans for Gullstone lighthouse?",
    "How many steps does the spiral staircase inside Gullstone lighthouse have?",
    "What nickname did the islanders give the Gullstone foghorn?",
    "In which year was the Gullstone foghorn switched off for good?",
    "In which year did Gullstone lighthouse stop burning paraffin and switch to electricity?",
    "Since which year has Gullstone lighthouse run automatically, with no keeper?",
    "Which keeper of Gullstone lighthouse wrote down every bird she saw from the gallery?",
    "How many bird species are recorded in the notebooks of the Gullstone keeper Ruth Abernethy?",
}


def _probe(dest: Path) -> Path:
    packaged = json.loads(package_file("sample_docs", "kelderwick-probe.json").read_text("utf-8"))
    questions = [q for q in packaged["questions"] if q["question"] in ASKED]
    assert len(questions) == len(ASKED)
    write_json(dest, {"leaf": LEAF, "questions": questions})
    return dest


def test_smollm2_learns_the_lighthouse_closed_book(smollm2_hf: Path, tmp_path: Path) -> None:
    run = RunPaths(tmp_path / "run")
    rows = [
        {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": question},
                {"role": "assistant", "content": fact},
            ],
            "metadata": {"leaf": LEAF, "kind": "knowledge", "type": "qa"},
        }
        for fact, questions in TRAINING.items()
        for question in questions
    ]
    write_jsonl(run.phase_data("knowledge_1"), rows)
    recipe = load_recipe(
        "demo",
        [
            f"student={{path: '{smollm2_hf}'}}",
            f"system_prompt={SYSTEM}",
            "train.phases=[{name: knowledge_1, epochs: 8, learning_rate: 1.0e-3, warmup_steps: 2,"
            " batch_tokens: 512, effective_batch_tokens: 512}]",
            "export.quantize=none",
            "evaluate.general_questions=0",
            f"evaluate.probes=['{_probe(tmp_path / 'probe.json')}']",
        ],
    )
    train_run(run, recipe, smollm2_hf, check_memory=False)
    model = export_run(run, recipe, Workspace.open(tmp_path / "ws"), student_dir=smollm2_hf)
    report = evaluate_run(run, recipe, EvalModels(Path(model.base_gguf), Path(model.merged_gguf)))

    (row,) = report.leaves
    assert row.base is not None and row.tuned is not None and row.tuned.n == len(ASKED)
    answers = "\n".join(f"{i['question']} → {i['tuned']['answer']}" for i in row.items)
    assert row.base.value <= 1 / len(ASKED), answers  # the base model does not know the island
    assert row.tuned.value >= 0.5, answers  # the tuned one answers most, never shown the text
