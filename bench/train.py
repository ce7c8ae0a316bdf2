"""Training throughput: our packed LoRA trainer vs a padded Hugging Face `Trainer` + peft.

Same student, same tokenized samples with varied lengths, same LoRA config, about the same
tokens per optimizer step (16 padded samples vs 4 packed rows of 512). Reports useful
(non-padding) tokens per CPU second for each, measured in this one run on one torch thread (CPU
time, not wall time, so other load on a shared machine does not skew it).

Two students: stories260K (real weights, tiny: the trainer's own overhead shows), and with
`--home` the demo's SmolLM2-135M-Instruct (pulled into that workspace), where each trainer also
runs with bf16 autocast (`train.cpu_bf16`; the HF Trainer's `bf16=True`). On a CPU without
native bf16 the bf16 rows are skipped. The last row trains half the samples as self-replay
learned as the base model's distribution (`train.self_replay_targets: distribution`), the
computing of those targets included: the cost of that protection per token.

    .venv/bin/python bench/train.py [--home WORKSPACE]
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from labdesk.models.store import pull_model
from labdesk.recipes import PhaseSettings, TrainSettings, load_recipe
from labdesk.train.base_targets import with_base_targets
from labdesk.train.data import IGNORE, Tokenized, collate
from labdesk.train.loop import StepPlan
from labdesk.train.torch_backend import (
    TorchStepper,
    base_logprobs,
    cpu_threads,
    load_base,
    native_bf16,
    with_lora,
)
from labdesk.workspace import Workspace

STORIES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "stories260K" / "hf"
SAMPLES = 512
SMOLLM2_SAMPLES = 48  # a 135M model computes ~500 times more per token than stories260K
SEQ = 512
THREADS = 1  # both trainers; on a shared 2-core CPU more threads mostly wait on each other


def make_items(count: int, seed: int = 0) -> list[Tokenized]:
    """Chat-like lengths: mostly short Q&A, some long context samples."""
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        n = rng.choice([rng.randint(24, 96), rng.randint(24, 96), rng.randint(150, SEQ)])
        ids = [1] + [rng.randrange(3, 512) for _ in range(n - 1)]
        prompt = n // 2
        items.append(Tokenized(ids, [IGNORE] * prompt + ids[prompt:]))
    return items


def ours(
    items: list[Tokenized],
    settings: TrainSettings,
    student: Path,
    bf16: bool = False,
    soft: bool = False,
) -> tuple[float, int, int]:
    """With `soft`, every other sample is self-replay learned as the base's distribution
    (`train.self_replay_targets`); the time to compute those targets is on the clock."""
    import torch

    torch.manual_seed(0)
    base = load_base(student, settings, "cpu")
    targets_s = 0.0
    if soft:
        started = time.process_time()
        items = [replace(t, distill=n % 2 == 0) for n, t in enumerate(items)]
        items = with_base_targets(items, "distribution", base_logprobs(base, "cpu", bf16))
        targets_s = time.process_time() - started
    model = with_lora(base, settings, None)
    stepper = TorchStepper(model, "cpu", bf16_autocast=bf16)
    phase = PhaseSettings(
        name="knowledge_1", batch_tokens=4 * SEQ, effective_batch_tokens=4 * SEQ, warmup_steps=0
    )
    plan = StepPlan.build(items, phase, settings)
    start = time.process_time() - targets_s
    tokens = computed = 0
    for refs in plan.steps:
        batches = [collate(items, plan.epochs[e][i]) for e, i in refs]
        total = sum(b.loss_tokens for b in batches)
        for b in batches:
            stepper.micro(b, total)
        stepper.step(2e-4)
        tokens += sum(b.useful_tokens for b in batches)
        computed += sum(len(b.input_ids) * len(b.input_ids[0]) for b in batches)
    return time.process_time() - start, tokens, computed


def baseline(
    items: list[Tokenized], settings: TrainSettings, student: Path, out: Path, bf16: bool = False
) -> tuple[float, int, int]:
    """HF Trainer, per-device batch 8 padded to the longest in the batch (its default collator)."""
    import torch
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(0)
    model = with_lora(load_base(student, settings, "cpu"), settings, None)

    class Data(torch.utils.data.Dataset):  # type: ignore[type-arg]
        def __len__(self) -> int:
            return len(items)

        def __getitem__(self, i: int) -> dict[str, list[int]]:
            return {"input_ids": items[i].input_ids, "labels": items[i].labels}

    computed = 0

    def pad(rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        nonlocal computed
        width = max(len(r["input_ids"]) for r in rows)
        computed += width * len(rows)
        ids = [r["input_ids"] + [0] * (width - len(r["input_ids"])) for r in rows]
        labels = [r["labels"] + [IGNORE] * (width - len(r["labels"])) for r in rows]
        mask = [[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows]
        return {
            "input_ids": torch.tensor(ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }

    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=8,
        gradient_accumulation_steps=2,
        num_train_epochs=1,
        learning_rate=2e-4,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        bf16=bf16,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Data(), data_collator=pad)
    start = time.process_time()
    trainer.train()
    return time.process_time() - start, sum(len(t.input_ids) for t in items), computed


Row = tuple[str, float, int, int]


def measure(student: Path, name: str, count: int, settings: TrainSettings, bf16: bool) -> None:
    items = make_items(count)
    tmp = Path(tempfile.mkdtemp())
    rows: list[Row] = []
    try:
        with cpu_threads(THREADS):
            for precision in (False, True) if bf16 else (False,):
                # warm-up: first-call kernel setup (per precision) off the clock
                ours(items[:8], settings, student, precision)
            rows.append(("HF Trainer + peft (padded)", *baseline(items, settings, student, tmp)))
            if bf16:
                bf16_baseline = baseline(items, settings, student, tmp, bf16=True)
                rows.append(("HF Trainer + peft, bf16=True", *bf16_baseline))
            rows.append(("labdesk packed", *ours(items, settings, student)))
            if bf16:
                rows.append(("labdesk packed, cpu_bf16", *ours(items, settings, student, True)))
            soft = ours(items, settings, student, bf16, soft=True)
            rows.append((f"labdesk packed{', cpu_bf16' if bf16 else ''}, half soft", *soft))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    show(rows, f"{count} samples, {sum(len(t.input_ids) for t in items)} useful tokens, {name}")


def show(rows: list[Row], title: str) -> None:
    base_rate = rows[0][2] / rows[0][1]
    print(f"\n{title}, {THREADS} torch thread(s)")
    print(
        f"{'trainer':<38} {'CPU s':>8} {'tokens computed':>16} {'padding':>8} "
        f"{'useful tok/s':>13} {'vs baseline':>12}"
    )
    for name, seconds, tokens, computed in rows:
        rate = tokens / seconds
        print(
            f"{name:<38} {seconds:8.2f} {computed:16d} {1 - tokens / computed:8.0%} "
            f"{rate:13.0f} {rate / base_rate:11.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, help="workspace for the demo student (SmolLM2)")
    args = parser.parse_args()
    settings = TrainSettings(
        max_seq_len=SEQ, lora_rank=8, lora_alpha=16, lora_dropout=0.0, gradient_checkpointing=False
    )
    measure(STORIES, "stories260K", SAMPLES, settings, bf16=False)
    if args.home:
        student = pull_model(load_recipe("demo").student, Workspace.open(args.home), want="hf")
        name = "SmolLM2-135M-Instruct"
        measure(student, name, SMOLLM2_SAMPLES, settings, bf16=native_bf16())


if __name__ == "__main__":
    main()
