"""Does it learn? Teach the real stories260K model new facts through the knowledge phase; it
must then recall them, and with a replay of plain stories its loss on held-out stories must
rise less than without replay (less forgetting)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labdesk.recipes import PhaseSettings
from labdesk.train import torch_backend
from labdesk.train.data import Tokenized, collate
from tests.train.helpers import tiny_recipe

pytestmark = pytest.mark.slow

SYSTEM = "You help."

# Short facts the base model cannot know (it only saw TinyStories).
FACTS = [
    ("Who is the baker?", "Tom the fox."),
    ("What color is the boat?", "The boat is green."),
    ("Where does Max sleep?", "Under the big tree."),
    ("What is in the box?", "A blue stone."),
]

# Plain stories written for this test, never trained on: forgetting is measured here.
HELD_OUT = [
    "Once upon a time, there was a little girl named Mia. She liked to play with her ball in "
    "the park. One day, the ball went into the pond. Mia was sad, but a kind duck pushed the "
    "ball back to her. Mia said thank you and they played all day.",
    'Tim had a red car. He drove it around the room every day. His mom said, "Tim, it is '
    'time to eat." Tim put the car on the table and ran to eat his soup. It was warm and good.',
    "One day, a big dog saw a small bird in the garden. The bird was scared. The dog said, "
    '"Do not be afraid. I want to be your friend." The bird smiled, and they became friends.',
]

# Starts of the base model's own stories, used as replay of what it already knows.
REPLAY_STARTS = [
    "Once upon a time",
    "One day, a little",
    "Lily saw",
    "The sun was",
    "Tom and",
    "Sue had a",
]


def _own_stories(model: Any, tokenizer: Any) -> list[str]:
    import torch

    out = []
    for start in REPLAY_STARTS:
        ids = tokenizer(start, return_tensors="pt").input_ids
        with torch.no_grad():
            gen = model.generate(ids, max_new_tokens=48, do_sample=False, repetition_penalty=1.3)
        out.append(tokenizer.decode(gen[0], skip_special_tokens=True))
    return out


def _story_loss(model: Any, tokenizer: Any) -> float:
    """Mean next-token loss over the held-out stories."""
    import torch

    items = [Tokenized(ids, list(ids)) for ids in (tokenizer(t).input_ids for t in HELD_OUT)]
    batch = collate(items, [[i] for i in range(len(items))])
    with torch.no_grad():
        total = torch_backend.summed_loss(model, batch, "cpu")
    return float(total) / sum(t.loss_tokens - 1 for t in items)


def _recalled(model: Any, tokenizer: Any) -> int:
    import torch

    hits = 0
    for question, answer in FACTS:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        prompt = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        with torch.no_grad():
            gen = model.generate(prompt, max_new_tokens=16, do_sample=False)
        hits += answer in tokenizer.decode(gen[0, prompt.shape[1] :], skip_special_tokens=True)
    return hits


def _chat(question: str, answer: str) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ],
        "metadata": {"train_on": "assistant"},
    }


def _plain(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "metadata": {"train_on": "all"}}


def test_new_facts_are_learned_and_replay_limits_forgetting(
    stories_dir: Path, tmp_path: Path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(stories_dir))
    recipe = tiny_recipe(stories_dir, lora_rank=4, lora_alpha=16, checkpoint_every=1000)
    phase = PhaseSettings(
        name="knowledge_1",
        epochs=20,
        learning_rate=5e-3,
        warmup_steps=3,
        batch_tokens=128,
        effective_batch_tokens=128,
    )
    with torch_backend.cpu_threads(1):
        base = AutoModelForCausalLM.from_pretrained(str(stories_dir)).eval()
        before = _story_loss(base, tokenizer)
        assert _recalled(base, tokenizer) == 0
        facts = [_chat(q, a) for q, a in FACTS]
        replay = [_plain(text) for text in _own_stories(base, tokenizer)]
        results: dict[str, tuple[int, float]] = {}
        for name, samples in {"without replay": facts, "with replay": facts + replay}.items():
            phase_dir = tmp_path / name.replace(" ", "_")
            torch_backend.train_phase(
                stories_dir, samples, phase, recipe.train, phase_dir, None, lambda e: None
            )
            tuned = PeftModel.from_pretrained(
                AutoModelForCausalLM.from_pretrained(str(stories_dir)), str(phase_dir / "adapter")
            ).eval()
            results[name] = (_recalled(tuned, tokenizer), _story_loss(tuned, tokenizer) - before)
    print(f"\nheld-out story loss of the base model: {before:.3f}")
    for name, (recalled, rise) in results.items():
        print(f"{name:<15} facts recalled {recalled}/{len(FACTS)}, held-out loss rise {rise:+.3f}")
    assert all(recalled == len(FACTS) for recalled, _ in results.values())
    assert results["without replay"][1] > 0  # learning the facts costs some plain-story skill
    assert results["with replay"][1] < results["without replay"][1]
