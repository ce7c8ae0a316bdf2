"""Test data for training: generated samples of the shape the generation stage writes, and a
tiny recipe around the real stories260K student."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from labdesk.recipes import Recipe

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"

# stories260K has no chat template; this one is simple enough for its 512-piece vocabulary.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'assistant' %}A: {{ m['content'] }}{{ eos_token }}\n"
    "{% elif m['role'] == 'user' %}Q: {{ m['content'] }}\n"
    "{% else %}{{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}A:{% endif %}"
)

FACTS = [
    ("What color is the lighthouse in Brindle?", "The lighthouse in Brindle is green."),
    ("Who is the baker in Brindle?", "The baker in Brindle is Tom the fox."),
    ("What does Lily keep in her red box?", "Lily keeps a small blue stone in her red box."),
    ("Where does the old cat sleep?", "The old cat sleeps under the big tree."),
    ("What is the name of the dog?", "The dog is named Max and he likes to run."),
]

DOCS = {
    "brindle.md": [
        "Brindle is a small town by the sea. The lighthouse in Brindle is green.",
        "The baker in Brindle is Tom the fox. He makes bread every day.",
    ],
    "lily.md": [
        "Lily has a red box. Lily keeps a small blue stone in her red box.",
        "The old cat sleeps under the big tree. The dog is named Max and he likes to run.",
    ],
}


def _chunk_of(answer: str) -> dict[str, Any]:
    for doc, chunks in DOCS.items():
        for index, text in enumerate(chunks):
            if answer.rstrip(".").split(" ")[-1] in text:
                return {"document": doc, "index": index, "text": text}
    raise AssertionError(answer)


def sample(
    leaf: str,
    kind: str,
    question: str,
    answer: str,
    sid: str,
    kind_type: str = "qa",
    chunk: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "placeholder"},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        "metadata": {
            "leaf": leaf,
            "kind": kind,
            "type": kind_type,
            "chunk": chunk,
            "context": None,
            "scores": {"pair": 3},
            "id": sid,
        },
    }


def knowledge_samples(repeat: int = 1) -> list[dict[str, Any]]:
    leaf = "knowledge/stories/brindle"
    out = []
    for r in range(repeat):
        for i, (q, a) in enumerate(FACTS):
            out.append(sample(leaf, "knowledge", q, a, f"k{i}-{r}", chunk=_chunk_of(a)))
    out.append(
        sample(
            leaf,
            "knowledge",
            "Summarize the document.",
            DOCS["brindle.md"][0],
            "s0",
            "summary",
            {"document": "brindle.md", "index": 0, "text": DOCS["brindle.md"][0]},
        )
    )
    return out


def skill_samples() -> list[dict[str, Any]]:
    rows = []
    for leaf, pairs in {
        "compositional_skills/writing/rhyme": [
            ("Say a word that rhymes with cat.", "Hat rhymes with cat.")
        ],
        "compositional_skills/writing/count": [
            ("Count to three.", "One, two, three."),
            ("Count to two.", "One, two."),
        ],
    }.items():
        for i, (q, a) in enumerate(pairs):
            rows.append(sample(leaf, "freeform_skill", q, a, f"{leaf}-{i}"))
    return rows


def tiny_recipe(student: Path, **train: Any) -> Recipe:
    phase = {
        "epochs": 1,
        "learning_rate": 5e-3,
        "warmup_steps": 1,
        "batch_tokens": 256,
        "effective_batch_tokens": 256,
    }
    data: dict[str, Any] = {
        "name": "t",
        "teacher": {"builtin": "tiny-teacher"},
        "student": {"path": str(student)},
        "system_prompt": "You help.",
        "mix": {"skills_per_leaf": 4, "knowledge_replay": 0.5, "skills_knowledge_replay": 0.5},
        "train": {
            "backend": "torch",
            "max_seq_len": 128,
            "lora_rank": 4,
            "lora_alpha": 8,
            "lora_dropout": 0.0,
            "gradient_checkpointing": False,
            "checkpoint_every": 2,
            "cpu_threads": 1,
            "phases": [{"name": n, **phase} for n in ("knowledge_1", "knowledge_2", "skills")],
            **train,
        },
    }
    return Recipe.model_validate(data)


def kill_at_first_checkpoint(
    proc: subprocess.Popen[bytes], phase_dir: Path, *, group: bool = False
) -> None:
    """SIGKILL a training process (or its whole process group) once it has a checkpoint."""
    pointer = phase_dir / "latest.json"
    deadline = time.monotonic() + 120
    while not pointer.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    (os.killpg if group else os.kill)(proc.pid, signal.SIGKILL)
    proc.wait()
    assert pointer.exists(), "the training process never wrote a checkpoint"
