"""LoRA / QLoRA with mlx-lm (Apple Silicon; also runs on Linux CPU), on the same mixed data.

The loop, schedule, micro-batches and checkpoints are the shared ones from `loop.py`; only the
maths runs in MLX. mlx-lm's models build their own causal mask and take no position ids, so a
packed micro-batch is fed one sample per row here (padded; padding carries no loss) — the
losses are the same per-token means torch computes.

The adapter is handed on in PEFT layout, like torch's: mlx-lm's ``lora_a`` (in × r) and
``lora_b`` (r × out) are PEFT's ``lora_A.weight`` and ``lora_B.weight`` transposed, and
mlx-lm's ``scale`` is PEFT's ``lora_alpha / r``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labdesk.errors import ModelError
from labdesk.events import Reporter
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
    SoftTargets,
    Tokenized,
    collate,
    shifted_targets,
    tokenize_dataset,
)
from labdesk.train.loop import publish_adapter, run_loop
from labdesk.train.torch_backend import load_tokenizer, process_rss_gb

if TYPE_CHECKING:
    import mlx.nn as nn
    import numpy as np

PEFT_PREFIX = "base_model.model."


def lora_keys(model: nn.Module) -> list[str]:
    """Every linear layer inside the transformer blocks (PEFT's ``all-linear``)."""
    import mlx.nn as nn

    keys: set[str] = set()

    def visit(path: str, module: Any) -> None:
        if isinstance(module, (nn.Linear, nn.QuantizedLinear)):
            keys.add(path)

    model.layers[0].apply_to_modules(visit)
    return sorted(keys)


def load_model(model_dir: Path, settings: TrainSettings) -> tuple[nn.Module, list[str]]:
    import mlx.nn as nn
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model as mlx_load

    try:
        model, _config = mlx_load(model_dir)
    except (OSError, ValueError) as exc:
        raise ModelError(f"mlx cannot load the student: {exc}", where=str(model_dir)) from None
    if settings.quantize_4bit:
        # 4-bit groups of 64 along the input; layers whose width is not a multiple stay full.
        nn.quantize(
            model,
            group_size=64,
            bits=4,
            class_predicate=lambda _p, m: isinstance(m, nn.Linear) and m.weight.shape[1] % 64 == 0,
        )
    model.freeze()
    keys = lora_keys(model)
    linear_to_lora_layers(
        model,
        len(model.layers),
        {
            "rank": settings.lora_rank,
            "scale": settings.lora_alpha / settings.lora_rank,
            "dropout": settings.lora_dropout,
            "keys": keys,
        },
    )
    return model, keys


def to_peft(weights: dict[str, Any]) -> dict[str, Any]:
    """mlx-lm LoRA arrays (numpy) → PEFT tensor names and shapes."""
    out = {}
    for name, value in weights.items():
        module, _, leaf = name.rpartition(".")
        peft_leaf = {"lora_a": "lora_A.weight", "lora_b": "lora_B.weight"}[leaf]
        out[f"{PEFT_PREFIX}{module}.{peft_leaf}"] = value.T.copy()
    return out


def from_peft(weights: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in weights.items():
        module = name.removeprefix(PEFT_PREFIX).rsplit(".", 2)[0]
        leaf = "lora_a" if ".lora_A." in name else "lora_b"
        out[f"{module}.{leaf}"] = value.T.copy()
    return out


def peft_config(settings: TrainSettings, keys: list[str], base: str) -> dict[str, Any]:
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": settings.lora_rank,
        "lora_alpha": settings.lora_alpha,
        "lora_dropout": settings.lora_dropout,
        "target_modules": sorted({k.rsplit(".", 1)[-1] for k in keys}),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
    }


class MlxStepper:
    def __init__(
        self, model: nn.Module, keys: list[str], settings: TrainSettings, base: str
    ) -> None:
        import mlx.nn as nn
        import mlx.optimizers as optim

        self.model = model
        self.keys = keys
        self.settings = settings
        self.base = base
        # bias-corrected like torch's AdamW (mlx's default leaves the first steps ~3x larger)
        self.optimizer = optim.AdamW(learning_rate=0.0, weight_decay=0.0, bias_correction=True)
        self.optimizer.init(model.trainable_parameters())
        self.grads: Any = None
        self._value_and_grad = nn.value_and_grad(model, self._loss)
        model.train()

    def _loss(self, ids: Any, targets: Any, scale: float, soft: tuple[Any, ...]) -> Any:
        """Summed cross-entropy (and KL where `soft` = (ids, logp, at) says) over `scale`."""
        import mlx.core as mx
        import mlx.nn as nn

        logits = self.model(ids).astype(mx.float32)
        mask = targets != IGNORE
        losses = nn.losses.cross_entropy(logits, mx.where(mask, targets, 0), reduction="none")
        if not soft:
            return (losses * mask).sum() / scale
        soft_ids, base_logp, at = soft
        at = at & mask
        logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        kl = kl_from_base(mx.take_along_axis(logp, soft_ids, axis=-1), base_logp)
        return ((losses * (mask & ~at)).sum() + (kl * at).sum()) / scale

    def micro(self, batch: MicroBatch, step_loss_tokens: int) -> float:
        import mlx.core as mx
        from mlx.utils import tree_map

        rows = _one_sample_per_row(batch)
        ids = mx.array(rows.input_ids)
        targets = mx.array(shifted_targets(rows.labels, rows.position_ids))
        soft = (
            ()
            if rows.soft is None
            else tuple(mx.array(a) for a in (rows.soft.ids, rows.soft.logp, rows.soft.at))
        )
        loss, grads = self._value_and_grad(ids, targets, float(step_loss_tokens), soft)
        self.grads = grads if self.grads is None else tree_map(mx.add, self.grads, grads)
        mx.eval(loss, self.grads)
        return float(loss.item())

    def step(self, lr: float) -> None:
        import mlx.core as mx
        from mlx.optimizers import clip_grad_norm

        grads, _norm = clip_grad_norm(self.grads, 1.0)
        self.optimizer.learning_rate = mx.array(lr)
        self.optimizer.update(self.model, grads)
        mx.eval(self.model.parameters(), self.optimizer.state)
        self.grads = None

    def adapter_arrays(self) -> dict[str, Any]:
        import numpy as np
        from mlx.utils import tree_flatten

        flat: Any = tree_flatten(self.model.trainable_parameters())
        return {k: np.array(v) for k, v in flat}

    def save_state(self, folder: Path, rng: dict[str, Any]) -> None:
        import mlx.core as mx
        from mlx.utils import tree_flatten

        trainable: dict[str, Any] = dict(tree_flatten(self.model.trainable_parameters()))
        mx.save_safetensors(str(folder / "adapter.safetensors"), trainable)
        state: dict[str, Any] = dict(tree_flatten(self.optimizer.state))
        mx.save_safetensors(str(folder / "optimizer.safetensors"), state)
        random_state: Any = mx.random.state
        mx.save_safetensors(str(folder / "rng.safetensors"), {"key": random_state[0]})

    def load_state(self, folder: Path) -> None:
        import mlx.core as mx
        from mlx.utils import tree_unflatten

        weights: Any = mx.load(str(folder / "adapter.safetensors"))
        self.model.load_weights(list(weights.items()), strict=False)
        state: Any = mx.load(str(folder / "optimizer.safetensors"))
        self.optimizer.state = tree_unflatten(list(state.items()))
        rng: Any = mx.load(str(folder / "rng.safetensors"))
        random_state: Any = mx.random.state
        random_state[0] = rng["key"]
        mx.eval(self.model.parameters(), self.optimizer.state)

    def save_adapter(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file(to_peft(self.adapter_arrays()), str(folder / "adapter_model.safetensors"))
        config = peft_config(self.settings, self.keys, self.base)
        (folder / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")

    def load_peft_adapter(self, folder: Path) -> None:
        import mlx.core as mx
        from safetensors.numpy import load_file

        weights = from_peft(load_file(str(folder / "adapter_model.safetensors")))
        self.model.load_weights([(k, mx.array(v)) for k, v in weights.items()], strict=False)
        mx.eval(self.model.parameters())

    def memory_gb(self) -> float:
        import mlx.core as mx

        peak = mx.get_peak_memory() if hasattr(mx, "get_peak_memory") else 0
        return peak / 2**30 if peak else process_rss_gb()


def kl_from_base(top: Any, base_logp: Any) -> Any:
    """KL(base ‖ student) at each position (as `torch_backend.kl_from_base`)."""
    import mlx.core as mx

    rest = mx.log1p(-mx.minimum(mx.exp(top).sum(axis=-1), 1 - 1e-6))
    student = mx.concatenate([top, rest[..., None]], axis=-1)
    return (mx.exp(base_logp) * (base_logp - student)).sum(axis=-1)


def base_logprobs(model: nn.Module) -> BaseLogprobs:
    """The base model's likeliest next tokens and their log-probabilities at each sample's
    `predicting` positions (`model` with fresh LoRA layers, whose zero B matrices leave it the
    base)."""
    import mlx.core as mx
    import numpy as np

    def one(item: Tokenized) -> tuple[np.ndarray, np.ndarray]:
        logits = model(mx.array([item.input_ids]))[0][mx.array(item.predicting)]
        logits = logits.astype(mx.float32)
        logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        ids = mx.argpartition(-logp, kth=TOP_K - 1, axis=-1)[:, :TOP_K]
        return np.array(ids), np.array(mx.take_along_axis(logp, ids, axis=-1))

    return lambda items: ((n, *one(item)) for n, item in enumerate(items))


def _one_sample_per_row(batch: MicroBatch) -> MicroBatch:
    """Split packed rows at position-id restarts into one (padded) row per sample."""
    pieces: list[Tokenized] = []
    for r, (ids, labels, positions) in enumerate(
        zip(batch.input_ids, batch.labels, batch.position_ids, strict=True)
    ):
        starts = [i for i, p in enumerate(positions) if p == 0] + [len(positions)]
        for a, b in itertools.pairwise(starts):
            if any(x != IGNORE for x in labels[a:b]):  # padding tails carry no loss: skip
                soft = batch.soft
                piece = (
                    None
                    if soft is None
                    else SoftTargets(soft.ids[r, a:b], soft.logp[r, a:b], soft.at[r, a:b])
                )
                pieces.append(Tokenized(ids[a:b], labels[a:b], soft=piece))
    return collate(pieces, [[i] for i in range(len(pieces))])


def rng_state() -> dict[str, Any]:
    return {}  # mlx's key is saved by the stepper itself


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
) -> list[float]:
    """Train one phase with MLX and leave its PEFT-layout adapter in ``phase_dir/adapter``."""
    import mlx.core as mx

    mx.random.seed(settings.seed)
    tokenizer = load_tokenizer(model_dir)
    items = tokenize_dataset(
        tokenizer, samples, settings.max_seq_len, settings.overlong, reporter, phase.name
    )
    model, keys = load_model(model_dir, settings)
    # the base's targets before the previous phase's adapter loads
    cache = TargetCache(phase_dir.parent / "base-targets", f"mlx {model_fingerprint(model_dir)}")
    items = with_base_targets(
        items, settings.self_replay_targets, base_logprobs(model), reporter, phase.name, cache
    )
    stepper = MlxStepper(model, keys, settings, str(model_dir))
    if init_adapter is not None:
        stepper.load_peft_adapter(init_adapter)
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
    )
    publish_adapter(stepper, phase_dir / "adapter")
    return losses
