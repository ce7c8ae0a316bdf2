"""Loss masks, overlong handling, and packing that computes exactly what separate rows do."""

from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.errors import ConfigError
from labdesk.events import Event
from labdesk.recipes import MixSettings
from labdesk.train.data import (
    IGNORE,
    SHAPE_STEP,
    collate,
    pack_rows,
    rounded_up,
    tokenize_dataset,
    tokenize_sample,
)
from labdesk.train.mix import mix
from tests.train.helpers import knowledge_samples, tiny_recipe


@pytest.fixture(scope="module")
def tokenizer(stories_dir: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(stories_dir))


def test_prompt_tokens_carry_no_loss(tokenizer) -> None:  # type: ignore[no-untyped-def]
    phases, _ = mix(knowledge_samples(), MixSettings(), "You help.")
    qa = next(s for s in phases["knowledge_1"] if s["metadata"]["type"] == "qa")
    item = tokenize_sample(tokenizer, qa)
    trained = [t for t in item.labels if t != IGNORE]
    answer = qa["messages"][2]["content"]
    assert tokenizer.decode(trained).strip() == answer + tokenizer.eos_token
    # every token before the answer (system prompt, question, "A:" header) is masked
    first = next(i for i, t in enumerate(item.labels) if t != IGNORE)
    assert "Q:" in tokenizer.decode(item.input_ids[:first])
    assert all(t == IGNORE for t in item.labels[:first])
    summary = next(s for s in phases["knowledge_1"] if s["metadata"]["type"] == "summary")
    full = tokenize_sample(tokenizer, summary)
    decoded = tokenizer.decode([t for t in full.labels if t != IGNORE])
    assert "Summarize the document." in decoded and "You help." not in decoded


def test_overlong_samples_are_reported_then_dropped_or_truncated(tokenizer) -> None:  # type: ignore[no-untyped-def]
    phases, _ = mix(knowledge_samples(), MixSettings(), "You help.")
    rows = phases["knowledge_1"]
    lengths = [len(tokenize_sample(tokenizer, s).input_ids) for s in rows]
    limit = sorted(lengths)[len(lengths) // 2]
    longer = sum(1 for n in lengths if n > limit)
    events: list[Event] = []
    kept = tokenize_dataset(tokenizer, rows, limit, "drop", events.append)
    assert len(kept) == len(rows) - longer
    assert events[0].kind == "warning" and f"{longer} of {len(rows)}" in events[0].message
    events.clear()
    cut = tokenize_dataset(tokenizer, rows, limit, "truncate", events.append)
    assert max(len(t.input_ids) for t in cut) == limit and "truncated" in events[0].message
    with pytest.raises(ConfigError, match="none of the"):
        tokenize_dataset(tokenizer, rows, min(lengths) - 1, "drop", phase="knowledge_1")


def test_pack_rows_fills_rows_without_overflow() -> None:
    lengths = [50, 20, 30, 70, 10, 60, 40]
    rows = pack_rows(lengths, 100)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 100 for row in rows)
    assert len(rows) == 3  # 280 tokens fit in three rows of 100


def test_packed_rows_equal_separate_rows(stories_dir: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """Same summed loss and same LoRA gradients, packed in one row or one sample per row."""
    import torch

    from labdesk.train.torch_backend import load_base, summed_loss, with_lora

    recipe = tiny_recipe(stories_dir)
    phases, _ = mix(knowledge_samples(), MixSettings(), "You help.")
    items = tokenize_dataset(tokenizer, phases["knowledge_1"][:5], 512, "drop")
    torch.manual_seed(0)
    model = with_lora(load_base(stories_dir, recipe.train, "cpu"), recipe.train, None)
    for name, p in model.named_parameters():  # non-zero B so LoRA gradients flow everywhere
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    packed = collate(items, [list(range(5))])
    separate = collate(items, [[i] for i in range(5)])
    assert len(packed.input_ids) == 1 and len(separate.input_ids) == 5
    grads = []
    losses = []
    for batch in (packed, separate):
        model.zero_grad()
        loss = summed_loss(model, batch, "cpu")
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append([p.grad.clone() for p in model.parameters() if p.requires_grad])
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=2e-5)
    # and packing really is needed for that: one row with no restarts mixes samples
    leaky = collate(items, [list(range(5))])
    object.__setattr__(leaky, "position_ids", [list(range(len(leaky.input_ids[0])))])
    assert float(summed_loss(model, leaky, "cpu")) != pytest.approx(losses[0], rel=1e-3)


def test_shapes_rounded_up_change_no_loss(stories_dir: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """Rows padded to a multiple of SHAPE_STEP, and logits at extra positions, give the loss
    that each sample alone gives with every position's logits."""
    import torch

    from labdesk.train.torch_backend import batch_tensors, load_base, logit_positions, summed_loss

    phases, _ = mix(knowledge_samples(), MixSettings(), "You help.")
    items = tokenize_dataset(tokenizer, phases["knowledge_1"][:3], 512, "drop")
    batch = collate(items, [[0], [1, 2]])
    longest = max(len(items[0].input_ids), len(items[1].input_ids) + len(items[2].input_ids))
    assert longest % SHAPE_STEP  # this batch really gets padded
    assert len(batch.input_ids[0]) == rounded_up(longest) < longest + SHAPE_STEP
    _, _, targets = batch_tensors(batch, "cpu")
    wanted = (targets != IGNORE).any(dim=0)
    keep = logit_positions(wanted)
    assert len(keep) % SHAPE_STEP == 0 and len(keep) > int(wanted.sum())
    assert set(wanted.nonzero().flatten().tolist()) <= set(keep.tolist())
    torch.manual_seed(0)
    model = load_base(stories_dir, tiny_recipe(stories_dir).train, "cpu")
    with torch.no_grad():
        reference = torch.tensor(0.0)
        for item in items:
            logits = model(input_ids=torch.tensor([item.input_ids])).logits[0, :-1]
            labels = torch.tensor(item.labels[1:])
            reference += torch.nn.functional.cross_entropy(
                logits, labels, ignore_index=IGNORE, reduction="sum"
            )
        assert float(summed_loss(model, batch, "cpu")) == pytest.approx(float(reference), rel=1e-5)


def test_bf16_autocast_step_matches_fp32(stories_dir: Path, tokenizer) -> None:  # type: ignore[no-untyped-def]
    """The CPU bf16 autocast changes the products' precision, not the loss the step sees."""
    import torch

    from labdesk.train.torch_backend import TorchStepper, cpu_bf16, load_base, with_lora

    recipe = tiny_recipe(stories_dir)
    phases, _ = mix(knowledge_samples(), MixSettings(), "You help.")
    items = tokenize_dataset(tokenizer, phases["knowledge_1"][:5], 512, "drop")
    batch = collate(items, [list(range(5))])
    losses = []
    for autocast in (False, True):
        torch.manual_seed(0)
        model = with_lora(load_base(stories_dir, recipe.train, "cpu"), recipe.train, None)
        stepper = TorchStepper(model, "cpu", bf16_autocast=autocast)
        losses.append(stepper.micro(batch, batch.loss_tokens))
        grads = [p.grad for p in stepper.params if p.grad is not None]
        assert grads and all(g.dtype == torch.float32 for g in grads)  # fp32 master weights
    assert losses[1] == pytest.approx(losses[0], rel=2e-2)
    assert losses[1] != losses[0]  # the products really ran in bf16
    assert not cpu_bf16("on", "cuda") and not cpu_bf16("off", "cpu") and cpu_bf16("on", "cpu")
