"""LoRA through peft on torch: QLoRA (nf4) on CUDA, full-precision LoRA on CPU.

Packed rows are fed with restarting position ids and no attention mask; transformers then
builds a block-diagonal causal mask from the position ids, so samples in one row never see
each other (checked numerically in tests/train/test_data.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter
from labdesk.recipes import PhaseSettings, TrainSettings
from labdesk.train.base_targets import (
    BaseLogprobs,
    TargetCache,
    model_fingerprint,
    with_base_targets,
)
from labdesk.train.data import (
    IGNORE,
    TOP_K,
    MicroBatch,
    Tokenized,
    rounded_up,
    shifted_targets,
    tokenize_dataset,
)
from labdesk.train.distributed import ALONE, World
from labdesk.train.loop import publish_adapter, run_loop

if TYPE_CHECKING:
    import numpy as np
    import torch
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)


def load_base(model_dir: Path, settings: TrainSettings, device: str) -> PreTrainedModel:
    """The student, frozen: nf4 + double quant + bf16 compute when `quantize_4bit`."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    kwargs: dict[str, Any] = {"trust_remote_code": False}
    if settings.quantize_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    else:
        # bf16 weights on a GPU halve memory; CPU LoRA stays in fp32 (bf16 matmuls are slow there).
        kwargs["dtype"] = torch.bfloat16 if device == "cuda" else torch.float32
    kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the student: {exc}", where=str(model_dir)) from None
    model.config.use_cache = False
    if settings.quantize_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=settings.gradient_checkpointing
        )
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def with_lora(
    model: PreTrainedModel, settings: TrainSettings, init_adapter: Path | None
) -> PeftModel:
    """Fresh LoRA on every linear layer, or continue from the previous phase's adapter."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if init_adapter is not None:
        return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    config = LoraConfig(
        r=settings.lora_rank,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def logit_positions(wanted: torch.Tensor) -> torch.Tensor:
    """The positions where `wanted` [width] is True, and as many of the first others as round
    their count up to `SHAPE_STEP` (their logits are computed and never used): oneDNN prepares
    its kernels anew for each matrix shape (see `data.SHAPE_STEP`)."""
    import torch

    keep = wanted.nonzero().squeeze(-1)
    extra = (~wanted).nonzero().squeeze(-1)[: rounded_up(len(keep)) - len(keep)]
    return torch.sort(torch.cat([keep, extra])).values


def batch_tensors(
    batch: MicroBatch, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import torch

    ids = torch.tensor(batch.input_ids, device=device)
    positions = torch.tensor(batch.position_ids, device=device)
    targets = torch.tensor(shifted_targets(batch.labels, batch.position_ids), device=device)
    return ids, positions, targets


def summed_loss(model: Any, batch: MicroBatch, device: str) -> torch.Tensor:
    """Sum of next-token cross-entropy over the batch's loss tokens.

    Logits are computed only at positions where some row takes loss (`logits_to_keep`): the
    output layer is a vocabulary-sized matmul per position, a fifth of a small model's compute,
    and most positions of chat samples (system prompt, question) carry no loss.

    Where the batch has soft targets (self-distillation replay), those positions take the KL
    divergence from the base model's distribution instead.
    """
    import torch

    ids, positions, targets = batch_tensors(batch, device)
    keep = logit_positions((targets != IGNORE).any(dim=0))
    logits = model(
        input_ids=ids, position_ids=positions, use_cache=False, logits_to_keep=keep
    ).logits.float()
    hard = targets[:, keep]
    if batch.soft is None:
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), hard.reshape(-1), ignore_index=IGNORE,
            reduction="sum",
        )  # fmt: skip
    # one log-softmax for both losses: boolean-indexing the logits would copy them twice
    logp = torch.log_softmax(logits, dim=-1)
    valid = hard != IGNORE
    at = torch.from_numpy(batch.soft.at).to(device)[:, keep] & valid
    nll = -logp.gather(-1, hard.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    top = logp.gather(-1, torch.from_numpy(batch.soft.ids).to(device)[:, keep])
    kl = kl_from_base(top, torch.from_numpy(batch.soft.logp).to(device)[:, keep])
    return (nll * (valid & ~at)).sum() + (kl * at).sum()


def kl_from_base(top: torch.Tensor, base_logp: torch.Tensor) -> torch.Tensor:
    """KL(base ‖ student) at each position, over the bins of the base's top tokens and the rest.

    `top` holds the student's log-probabilities of the base's top tokens. Zero, with zero
    gradient, while the student still gives the base's probabilities.
    """
    import torch

    rest = torch.log1p(-top.exp().sum(-1).clamp(max=1 - 1e-6))
    student = torch.cat([top, rest.unsqueeze(-1)], dim=-1)
    return (base_logp.exp() * (base_logp - student)).sum(-1)


def base_logprobs(
    model: PreTrainedModel, device: str, bf16_autocast: bool, batch_size: int = 8
) -> BaseLogprobs:
    """The base model's likeliest next tokens and their log-probabilities at each sample's
    `predicting` positions (`base_targets.BaseLogprobs`).

    `model` must be the base without an adapter. Run in the precision training runs in, so the
    student starts at a KL of zero. Samples of similar length go through together, padded on
    the right: the demo's 234 SmolLM2-135M replay samples took 25 s in batches of 8 and 42 to
    46 s one at a time on 2 cores.
    """
    import torch

    def rows(items: list[Tokenized]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        order = sorted(range(len(items)), key=lambda i: len(items[i].input_ids))
        for start in range(0, len(order), batch_size):
            group = order[start : start + batch_size]
            width = rounded_up(max(len(items[i].input_ids) for i in group))
            pad = [width - len(items[i].input_ids) for i in group]
            ids = [items[i].input_ids + [0] * n for i, n in zip(group, pad, strict=True)]
            mask = [[1] * (width - n) + [0] * n for n in pad]
            wanted = torch.zeros(width, dtype=torch.bool)
            wanted[[p for i in group for p in items[i].predicting]] = True
            keep = logit_positions(wanted)
            column = {int(p): k for k, p in enumerate(keep)}
            with (
                torch.inference_mode(),
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_autocast),
            ):
                logits = model(
                    input_ids=torch.tensor(ids, device=device),
                    attention_mask=torch.tensor(mask, device=device),
                    use_cache=False,
                    logits_to_keep=keep.to(device),
                ).logits
                for row, i in enumerate(group):
                    at = [column[p] for p in items[i].predicting]
                    logp = torch.log_softmax(logits[row, at].float(), dim=-1)
                    top = torch.topk(logp, TOP_K, dim=-1)
                    yield i, top.indices.cpu().numpy(), top.values.cpu().numpy()

    return rows


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (x86 AVX512-BF16 or AMX, Arm BF16).

    Elsewhere oneDNN emulates bf16 and autocast gains nothing.
    """
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def cpu_bf16(setting: Literal["auto", "on", "off"], device: str) -> bool:
    """Whether CPU training runs under bf16 autocast (`train.cpu_bf16`); never on a GPU."""
    if device != "cpu" or setting == "off":
        return False
    return setting == "on" or native_bf16()


class TorchStepper:
    def __init__(
        self,
        model: PeftModel,
        device: str,
        weight_decay: float = 0.0,
        world: World = ALONE,
        bf16_autocast: bool = False,
    ) -> None:
        import torch

        self.model = model
        self.device = device
        self.bf16_autocast = bf16_autocast
        self.world = world
        self.params = [p for p in model.parameters() if p.requires_grad]
        world.broadcast(self.params)  # every rank starts from rank 0's adapter
        self.optimizer = torch.optim.AdamW(self.params, lr=0.0, weight_decay=weight_decay)
        model.train()

    def micro(self, batch: MicroBatch, step_loss_tokens: int) -> float:
        import torch

        # the forward pass only: backward follows the dtypes autocast chose
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16_autocast):
            loss = summed_loss(self.model, batch, self.device) / step_loss_tokens
        loss.backward()
        return float(loss.detach())

    def step(self, lr: float) -> None:
        import torch

        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.world.sum_grads(self.params)
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def save_state(self, folder: Path, rng: dict[str, Any]) -> None:
        import torch

        self.model.save_pretrained(str(folder / "adapter"))
        torch.save({"optimizer": self.optimizer.state_dict(), "rng": rng}, folder / "state.pt")

    def load_state(self, folder: Path) -> None:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        weights = load_file(
            str(folder / "adapter" / "adapter_model.safetensors"), device=self.device
        )
        set_peft_model_state_dict(self.model, weights)
        state = torch.load(folder / "state.pt", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        rng = state["rng"]
        if "by_rank" in rng:  # written by several processes: this rank's own, if it had one
            rng = rng["by_rank"][min(self.world.rank, len(rng["by_rank"]) - 1)]
        restore_rng(rng)

    def save_adapter(self, folder: Path) -> None:
        self.model.save_pretrained(str(folder))

    def memory_gb(self) -> float:
        import torch

        if self.device.startswith("cuda"):
            return torch.cuda.max_memory_allocated(self.device) / 2**30
        return process_rss_gb()


def rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def process_rss_gb() -> float:
    """Peak resident memory of this process (ru_maxrss: KiB on Linux, bytes on macOS)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**30 if sys.platform == "darwin" else 2**20)


@contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Torch's intra-op threads set to `count` for the block (process-wide, so restored)."""
    import torch

    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_phase(
    model_dir: Path,
    samples: list[dict[str, Any]],
    phase: PhaseSettings,
    settings: TrainSettings,
    phase_dir: Path,
    init_adapter: Path | None,
    reporter: Reporter,
    *,
    resume: bool = False,
    stop: Callable[[], bool] | None = None,
    world: World = ALONE,
) -> list[float]:
    """Train one phase with torch and leave its PEFT adapter in ``phase_dir/adapter``."""
    import torch

    device = pick_device() if world.alone else world.device
    with cpu_threads(settings.cpu_threads if device == "cpu" else None):
        # same LoRA init for the same recipe (other ranks take rank 0's); own dropout per rank
        torch.manual_seed(settings.seed + world.rank)
        tokenizer = load_tokenizer(model_dir)
        items = tokenize_dataset(
            tokenizer, samples, settings.max_seq_len, settings.overlong, reporter, phase.name
        )
        base = load_base(model_dir, settings, device)
        autocast = cpu_bf16(settings.cpu_bf16, device)
        if autocast:
            message = "bf16 matrix products on this CPU (train.cpu_bf16)"
            reporter(Event("train", "message", message, step=phase.name))
        logprobs = base_logprobs(base, device, autocast)
        cache = TargetCache(
            phase_dir.parent / "base-targets", f"torch {model_fingerprint(model_dir)} {autocast}"
        )
        items = with_base_targets(
            items, settings.self_replay_targets, logprobs, reporter, phase.name, cache, world
        )
        model = with_lora(base, settings, init_adapter)
        stepper = TorchStepper(model, device, world=world, bf16_autocast=autocast)
        losses = run_loop(
            stepper,
            items,
            phase,
            settings,
            phase_dir,
            reporter,
            resume=resume,
            rng_state=rng_state,
            stop=stop,
            world=world,
        )
        if world.main:
            publish_adapter(stepper, phase_dir / "adapter")
        return losses
