"""A run with a planted knowledge leaf, trained for real with labdesk's own trainer.

The student is the real stories260K model (a copy with the LAB chat template added, since the
trainer formats samples with the student's template). The leaf holds four made-up facts in
TinyStories words, each answer a name the question does not give; the training data asks for
them in other words, the held-out seeds ask the original questions closed-book.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from labdesk.fileio import write_json, write_jsonl
from labdesk.models.chat_template import LAB_CHAT_TEMPLATE
from labdesk.recipes import Recipe, load_recipe
from labdesk.runs import RunPaths

KNOWLEDGE_LEAF = "knowledge/stories/town_facts"
SKILL_LEAF = "compositional_skills/writing/rhyme"
SYSTEM = "I am a helpful assistant."
FACTS = [
    ("Who is Tim's best friend?", "Tim's best friend is Ben.", ["Tell me the name of Tim's best friend.", "Which friend does Tim like best?"]),
    ("What is the name of Max's dog?", "Max's dog is named Spot.", ["Tell me what Max's dog is called.", "What do they call the dog of Max?"]),
    ("Who gave Lily a red ball?", "Mom gave Lily a red ball.", ["Tell me who gave Lily the red ball.", "Lily got a red ball from whom?"]),
    ("What is the big cat called?", "The big cat is called Tom.", ["Tell me the name of the big cat.", "What name does the big cat have?"]),
]  # fmt: skip


def make_student(stories_hf: Path, dest: Path) -> Path:
    shutil.copytree(stories_hf, dest)
    config_path = dest / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["chat_template"] = LAB_CHAT_TEMPLATE
    config_path.chmod(0o644)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    for file in dest.iterdir():
        file.chmod(0o644)
    return dest


def planted_overrides(student: Path, epochs: float = 6) -> list[str]:
    """`--set` overrides of the tiny recipe for the planted run (also usable on the CLI)."""
    return [
        f"student={{path: '{student}'}}",
        f"system_prompt={SYSTEM}",
        "engine.n_ctx=1024",
        "engine.parallel=4",
        "engine.n_threads=2",
        "train.lora_rank=8",
        "train.lora_alpha=16",
        "train.lora_dropout=0",
        # fp32 products: at this learning rate a 260K model follows bf16 rounding, which moves
        # with matrix shapes (1 of 4 facts learnt after micro-batch widths were rounded to 64,
        # 3 of 4 in fp32 either way); bf16 steps are tested in tests/train/test_data.py
        "train.cpu_bf16='off'",
        "train.max_seq_len=128",
        "train.checkpoint_every=1000",
        f"train.phases=[{{name: knowledge_1, epochs: {epochs}, learning_rate: 1.0e-2,"
        " warmup_steps: 2, batch_tokens: 512, effective_batch_tokens: 512}]",
        "export.outtype=f32",
        "export.quantize=none",
        "evaluate.max_new_tokens=24",
        "evaluate.general_questions=2",
    ]


def planted_recipe(student: Path, epochs: float = 6) -> Recipe:
    return load_recipe("tiny", planted_overrides(student, epochs))


def write_run_inputs(run: RunPaths) -> None:
    rows = []
    for question, answer, paraphrases in FACTS:
        for asked in paraphrases:
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": asked},
                        {"role": "assistant", "content": answer},
                    ],
                    "metadata": {"leaf": KNOWLEDGE_LEAF, "kind": "knowledge", "type": "qa"},
                }
            )
        del question
    write_jsonl(run.phase_data("knowledge_1"), rows)
    write_json(
        run.heldout("knowledge__stories__town_facts"),
        {
            "leaf": KNOWLEDGE_LEAF,
            "kind": "knowledge",
            "seeds": [
                {
                    "context": "Facts about the town.",
                    "qa": [{"question": q, "answer": a} for q, a, _ in FACTS],
                }
            ],
        },
    )
    write_json(
        run.heldout("compositional_skills__writing__rhyme"),
        [{"question": "Write a line about a cat.", "answer": "The cat sat on the mat."}],
    )
