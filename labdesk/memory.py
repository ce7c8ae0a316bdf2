"""Will it fit? One memory plan for every stage of a run, made before anything is loaded.

Running out of memory an hour into a run loses the hour (an OOM kill saves nothing, a swap storm
freezes the machine), so each stage is planned from its models' shapes before it starts:

- generate: the teacher and the judge in llama.cpp, held together: weights, the KV cache of
  every sequence, compute buffers;
- mix, with self-replay: the base student in llama.cpp, answering the general prompts;
- train: the student at the peak of one micro-batch, phase after phase: frozen weights at their
  precision, LoRA with its gradients and AdamW moments, activations kept for backward, logits;
- evaluate: one model at a time: the base, then the tuned (merged, same precision) student,
  each answering and scoring reference answers in the engine.

The estimates are simple and a little pessimistic: refusing a run that would have fitted costs a
smaller batch; starting one that will not costs the run. `labdesk run` refuses up front when a
pending stage will not fit what is free, `labdesk doctor` shows the plan, and the engine and the
trainer check again against what is free when they load.

Where llama.cpp offloads to a GPU and `engine.n_gpu_layers` is "auto", a stage whose models do not
fit the GPU whole runs with as many layers on the GPU as fit, and the rest on the CPU.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter, null_reporter

if TYPE_CHECKING:  # labdesk.models imports this module: its types are imported where used
    from labdesk.models.ggufinfo import GGUFInfo
    from labdesk.models.store import Want
    from labdesk.recipes import EngineSettings, ModelRef, PhaseSettings, Recipe, TrainSettings
    from labdesk.workspace import Workspace

GIB = 2**30
STAGES = ("generate", "mix", "train", "evaluate")
"""The stages that may load models (mix: when the base student answers self-replay prompts)."""
# llama.cpp's scratch and runtime beyond weights, KV cache, logits and activations.
_LLAMA_OVERHEAD = 64 * 2**20
# Bits per weight of a GGUF written at each type (Q4_K_M keeps some tensors in Q6_K).
_GGUF_BITS = {"f32": 32.0, "f16": 16.0, "bf16": 16.0, "q8_0": 8.5, "q4_k_m": 4.9}
_ENGINE_HINT = (
    "pick a smaller or more quantized model (a recipe for your hardware), or lower "
    "engine.n_ctx / engine.parallel"
)


@dataclass(frozen=True)
class MemoryPlan:
    """What one model holds at its peak, part by part (bytes), and where it lives."""

    label: str
    weights: int
    kv_cache: int = 0
    lora: int = 0
    """Adapter weights, their gradients and AdamW's two moments."""
    activations: int = 0
    logits: int = 0
    overhead: int = 0
    device: str = "cpu"
    """Where the GPU share goes: "cpu" (none), "cuda" (its own memory) or "metal" (shared)."""
    gpu_share: float = 0.0
    """Fraction of the model on that GPU (llama.cpp offloads layer by layer)."""
    host_only: int = 0
    """Bytes that stay in RAM whatever the device (llama.cpp's kept logits)."""
    hint: str = ""
    """What to change when it does not fit."""

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.kv_cache
            + self.lora
            + self.activations
            + self.logits
            + self.overhead
        )

    @property
    def vram(self) -> int:
        """Bytes in dedicated GPU memory (Metal shares the system RAM, so none)."""
        if self.device != "cuda":
            return 0
        return int((self.total - self.host_only) * self.gpu_share)

    @property
    def ram(self) -> int:
        return self.total - self.vram

    def parts(self) -> str:
        names = ("weights", "kv_cache", "lora", "activations", "logits", "overhead")
        shown = [(n.replace("_", " "), getattr(self, n)) for n in names if getattr(self, n)]
        return ", ".join(f"{name} {_gib(n)}" for name, n in shown)


# -- what one model needs ----------------------------------------------------------------------


def plan_llama(
    info: GGUFInfo,
    *,
    n_ctx_total: int,
    n_batch: int,
    gpu_layers: int = 0,
    kept_logits: int = 0,
    label: str = "",
) -> MemoryPlan:
    """llama.cpp with `info` loaded: weights, an f16 KV cache of `n_ctx_total` cells, the
    buffers of one `n_batch` batch, and `kept_logits` rows of logits kept in RAM."""
    cuda = gpu_layers > 0 and gpu_device() == "cuda"
    return MemoryPlan(
        label=label or info.path.name,
        weights=info.weight_bytes,
        kv_cache=info.kv_bytes_per_token() * n_ctx_total,
        activations=info.n_embd * n_batch * 4 * 8,
        logits=info.n_vocab * (n_batch + kept_logits) * 4,
        overhead=_LLAMA_OVERHEAD,
        device=gpu_device() if gpu_layers > 0 else "cpu",
        gpu_share=min(gpu_layers, info.n_layer) / max(info.n_layer, 1),
        host_only=info.n_vocab * kept_logits * 4,
        hint=_ENGINE_HINT + (" / engine.n_gpu_layers" if cuda else ""),
    )


@dataclass(frozen=True)
class _Shape:
    """A decoder's dimensions, from its config.json."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    inter: int
    vocab: int
    tied: bool

    @classmethod
    def of(cls, config: dict[str, Any]) -> _Shape:
        h = int(config["hidden_size"])
        heads = int(config.get("num_attention_heads", 1))
        return cls(
            hidden=h,
            layers=int(config["num_hidden_layers"]),
            heads=heads,
            kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or h // heads),
            inter=int(config.get("intermediate_size", 4 * h)),
            vocab=int(config["vocab_size"]),
            tied=bool(config.get("tie_word_embeddings")),
        )

    @property
    def q_out(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_out(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def linear_params(self) -> int:
        """q, k, v, o and the three MLP projections, over all layers."""
        h = self.hidden
        per_layer = 2 * h * self.q_out + 2 * h * self.kv_out + 3 * h * self.inter
        return self.layers * per_layer

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)


def plan_training(
    config: dict[str, Any], settings: TrainSettings, phase: PhaseSettings, device: str
) -> MemoryPlan:
    """The student's peak for one micro-batch of `phase.batch_tokens` tokens on `device`
    ("cuda", "cpu", or "mlx": Apple's GPU, in the system RAM)."""
    shape = _Shape.of(config)
    h, inter, layers = shape.hidden, shape.inter, shape.layers
    # torch on CUDA and MLX compute in 16 bits; torch on the CPU in fp32.
    half = device in ("cuda", "mlx")
    # nf4 with double quant ≈ 0.53 byte/param on linear layers; embeddings stay 16-bit.
    if settings.quantize_4bit:
        weights = shape.linear_params * 0.53 + shape.embed_params * 2
    else:
        weights = (shape.linear_params + shape.embed_params) * (2 if half else 4)
    lora_params = (
        layers
        * settings.lora_rank
        * ((h + shape.q_out) + 2 * (h + shape.kv_out) + (shape.q_out + h) + 3 * (h + inter))
    )
    act_bytes = 2 if half else 4
    tokens = phase.batch_tokens
    # Saved tensors per token per layer: norms, q/k/v/o, attention output, MLP gates (≈ 10h + 4i).
    per_token_layer = (10 * h + 4 * inter) * act_bytes
    if settings.gradient_checkpointing:
        activations = tokens * (layers * h * act_bytes + per_token_layer)
    else:
        activations = tokens * layers * per_token_layer
    # Attention scores materialise (tokens × row) when no fused kernel: count one layer's worth.
    activations += shape.heads * tokens * min(tokens, settings.max_seq_len) * act_bytes
    plan = MemoryPlan(
        label=phase.name,
        weights=int(weights),
        lora=lora_params * 4 * 4,  # weights, grads, two AdamW moments in fp32
        activations=activations,
        logits=tokens * shape.vocab * 4 * 3,  # fp32 logits, their softmax and gradient
        overhead=int((0.5 if device == "cuda" else 0.3) * GIB),
        device=device,
        gpu_share=1.0 if device == "cuda" else 0.0,
    )
    tips = training_tips(settings, phase, plan)
    return replace(plan, hint="; or ".join(tips) or "use a smaller student")


def training_tips(settings: TrainSettings, phase: PhaseSettings, plan: MemoryPlan) -> list[str]:
    tips: list[str] = []
    if plan.activations + plan.logits > plan.weights:
        tips.append(
            f"halve train.phases[{phase.name}].batch_tokens to {phase.batch_tokens // 2} "
            "(effective_batch_tokens stays, via accumulation)"
        )
        tips.append(f"lower train.max_seq_len (now {settings.max_seq_len})")
    if not settings.gradient_checkpointing and plan.device != "mlx":  # MLX keeps them all
        tips.append("set train.gradient_checkpointing: true")
    if not settings.quantize_4bit:
        tips.append("set train.quantize_4bit: true (QLoRA)")
    return tips


def estimated_gguf(config: dict[str, Any], gguf_type: str, path: Path) -> GGUFInfo:
    """The GGUF export will write from a student with `config`, before it exists."""
    from labdesk.models.ggufinfo import GGUFInfo

    shape = _Shape.of(config)
    params = shape.linear_params + shape.embed_params
    return GGUFInfo(
        path=path,
        architecture=str(config.get("model_type", "llama")),
        n_layer=shape.layers,
        n_embd=shape.hidden,
        n_head=shape.heads,
        n_head_kv=shape.kv_heads,
        n_ctx_train=int(config.get("max_position_embeddings", 0)),
        n_vocab=shape.vocab,
        name=None,
        weight_bytes=int(params * _GGUF_BITS[gguf_type] / 8),
        chat_template=None,
        bos_token=None,
        eos_token=None,
        head_dim=shape.head_dim,
    )


# -- what is free ------------------------------------------------------------------------------


def available_ram() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def available_vram() -> int | None:
    """Free memory on the first CUDA GPU; None without one (or when it cannot be asked)."""
    torch = sys.modules.get("torch")  # already imported: ask it (no subprocess)
    if torch is not None and torch.cuda.is_available():
        free, _total = torch.cuda.mem_get_info()
        return int(free)
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(out.split()[0]) * 1024**2
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def available_memory(device: str) -> int:
    """Free bytes where a model on `device` lives (the GPU's for CUDA, else the RAM)."""
    if device == "cuda":
        return available_vram() or 0
    return available_ram()


def gpu_device() -> str:
    """'metal' on macOS, else 'cuda' (the GPU builds llama-cpp-python is made with)."""
    return "metal" if sys.platform == "darwin" else "cuda"


# -- checks ------------------------------------------------------------------------------------


def check_fits(
    plan: MemoryPlan, *, where: str, free_ram: int | None = None, free_vram: int | None = None
) -> None:
    """Raise ModelError when `plan` cannot fit in free GPU memory or free RAM."""
    _check_together((plan,), where=where, free_ram=free_ram, free_vram=free_vram)


def _check_together(
    plans: Sequence[MemoryPlan],
    *,
    where: str,
    free_ram: int | None = None,
    free_vram: int | None = None,
    stage: str = "",
) -> None:
    """Raise ModelError when `plans`, held at the same time, cannot fit."""
    vram = sum(p.vram for p in plans)
    if vram:
        free_vram = available_vram() if free_vram is None else free_vram
        if free_vram is not None:  # unknown (no nvidia-smi): let the library try
            _refuse_over(plans, vram, free_vram, "CUDA", where, stage)
    ram = sum(p.ram for p in plans)
    free_ram = available_ram() if free_ram is None else free_ram
    _refuse_over(plans, ram, free_ram, "RAM", where, stage)


def _refuse_over(
    plans: Sequence[MemoryPlan], need: int, free: int, memory: str, where: str, stage: str
) -> None:
    if need <= free:
        return
    what = " + ".join(f"{p.label} ({p.parts()})" for p in plans)
    hints = list(dict.fromkeys(p.hint for p in plans if p.hint))
    raise ModelError(
        f"{f'{stage} stage: ' if stage else ''}{what} needs about {_gib(need)} of {memory} "
        f"but only {_gib(free)} is free",
        where=where,
        hint="; ".join(hints) or None,
    )


def check_training_fits(
    model_dir: Path,
    settings: TrainSettings,
    phase: PhaseSettings,
    reporter: Reporter = null_reporter,
    device: str | None = None,
    available: int | None = None,
    processes: int = 1,
) -> MemoryPlan:
    """Raise a ModelError that says what to change if the phase will not fit in memory.

    With several training processes each holds the whole student and one micro-batch: on CUDA
    each has a GPU of its own (the plan is per GPU), on the CPU they share the RAM.
    """
    config = read_student_config(model_dir)
    if device is None:
        device = training_device(settings)
    plan = plan_training(config, settings, phase, device)
    plans = (plan,) * (1 if device == "cuda" else processes)
    need = sum(p.total for p in plans)
    room = available if available is not None else available_memory(device)
    reporter(
        Event(
            "train",
            "message",
            f"{phase.name}: needs about {need / GIB:.1f} GiB of {room / GIB:.1f} GiB free",
            step=phase.name,
            metrics={"memory_needed_gb": need / GIB, "memory_free_gb": room / GIB},
        )
    )
    if device == "cuda":
        _check_together(plans, where=str(model_dir), free_vram=room)
    else:
        _check_together(plans, where=str(model_dir), free_ram=room)
    return plan


def read_student_config(model_dir: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read the student's config: {exc}", where=str(model_dir)) from None
    return dict(config.get("text_config", config))


def training_device(settings: TrainSettings) -> str:
    """Where the student trains: "mlx" (Apple's GPU, sharing the RAM), "cuda" or "cpu"."""
    from labdesk.train.phases import choose_backend

    if choose_backend(settings) == "mlx":
        return "mlx"
    from labdesk.train.torch_backend import pick_device

    return pick_device()


# -- the run's plan, stage by stage ------------------------------------------------------------


@dataclass(frozen=True)
class Hardware:
    """What a run may use: free RAM, free CUDA memory, and where each library computes."""

    ram: int
    vram: int | None = None
    """Free memory of the CUDA GPU; None: no CUDA GPU (or not measurable)."""
    llama_offload: bool = False
    """llama.cpp was built with CUDA or Metal and offloads layers."""
    train_device: str | None = None
    """"cuda", "mlx" or "cpu"; None: ask torch when the train stage is planned."""

    @classmethod
    def here(cls) -> Hardware:
        import llama_cpp

        return cls(
            ram=available_ram(),
            vram=available_vram(),
            llama_offload=bool(llama_cpp.llama_supports_gpu_offload()),
        )


@dataclass(frozen=True)
class ModelFacts:
    """The shapes a run's plan is made from; None where a model is not on this machine yet."""

    teacher: GGUFInfo | None
    judge: GGUFInfo | None
    """None: the teacher judges (or, with `missing`, the judge is not here)."""
    student: dict[str, Any] | None
    """The student's config.json."""
    student_gguf: GGUFInfo | None = None
    """The base student as llama.cpp runs it, when it is a GGUF already (else estimated)."""
    base: GGUFInfo | None = None
    """The exported GGUFs, once the run has them (estimated from the student until then)."""
    tuned: GGUFInfo | None = None
    missing: tuple[str, ...] = ()
    """"<role> <model>" for each model not on this machine yet."""

    def lacking(self, *roles: str) -> tuple[str, ...]:
        return tuple(m for m in self.missing if m.split()[0] in roles)


@dataclass(frozen=True)
class StagePlan:
    """One stage: its steps run one after another, each holding its models at the same time."""

    stage: str
    steps: tuple[tuple[MemoryPlan, ...], ...] = ()
    engine: EngineSettings | None = None
    """The llama.cpp settings to run the stage with (n_gpu_layers fitted to the GPU)."""
    missing: tuple[str, ...] = ()
    """The models it needs that are not on this machine yet (then it has no steps)."""
    advice: tuple[str, ...] = ()

    @property
    def peak_ram(self) -> int:
        return max((sum(p.ram for p in step) for step in self.steps), default=0)

    @property
    def peak_vram(self) -> int:
        return max((sum(p.vram for p in step) for step in self.steps), default=0)

    def check(self, hw: Hardware, *, where: str) -> None:
        """Raise ModelError naming the first step that will not fit `hw`."""
        for step in self.steps:
            _check_together(
                step,
                where=where,
                free_ram=hw.ram,
                free_vram=hw.vram if hw.vram is not None else 1 << 62,  # unknown: let it try
                stage=self.stage,
            )


def model_facts(
    recipe: Recipe,
    ws: Workspace,
    *,
    run_name: str | None = None,
    stages: Sequence[str] = STAGES,
    build: bool = True,
) -> ModelFacts:
    """Read the shapes of the models `stages` load from this machine (and the run's exports).

    `build=False` leaves built-in tiny models unbuilt (they count as not here yet).
    """
    from labdesk.models.ggufinfo import read_gguf
    from labdesk.models.store import resolve_model

    missing: list[str] = []

    def locate(role: str, ref: ModelRef, want: Want) -> Path | None:
        if ref.builtin and not build:
            missing.append(f"{role} {ref.label()} (built on first use)")
            return None
        try:
            return resolve_model(ref, ws, want=want)
        except ModelError:
            missing.append(f"{role} {ref.label()}")
            return None

    teacher = judge = student = student_gguf = base = tuned = None
    if "generate" in stages:  # a model behind an endpoint takes no memory here
        if not recipe.teacher.endpoint and (path := locate("teacher", recipe.teacher, "gguf")):
            teacher = read_gguf(path)
        judge_ref = recipe.judge
        if judge_ref and not judge_ref.endpoint and (path := locate("judge", judge_ref, "gguf")):
            judge = read_gguf(path)
    ref = recipe.student
    if {"mix", "train", "evaluate"} & set(stages):
        named_file = ref.package or ref.file or (ref.path and Path(ref.path).expanduser().is_file())
        if named_file:  # a GGUF student: its shape from the file, before any conversion
            if path := locate("student", ref, "gguf"):
                student_gguf = read_gguf(path)
                student = student_gguf.as_config()
        elif path := locate("student", ref, "hf"):
            student = read_student_config(path)
            if ref.builtin:
                student_gguf = read_gguf(resolve_model(ref, ws, want="gguf"))
    if "evaluate" in stages and run_name is not None:
        from labdesk.export.registry import find_tuned

        try:
            model = find_tuned(ws, run_name)
            base, tuned = read_gguf(Path(model.base_gguf)), read_gguf(Path(model.merged_gguf))
        except ModelError:
            pass  # not exported yet: estimated from the student
    return ModelFacts(teacher, judge, student, student_gguf, base, tuned, tuple(missing))


Planner = Callable[["GGUFInfo", "EngineSettings", int], MemoryPlan]


def _engine_plan(info: GGUFInfo, settings: EngineSettings, gpu_layers: int) -> MemoryPlan:
    from labdesk.models.engine import plan_for

    return plan_for(info, settings, gpu_layers)


def plan_stages(
    recipe: Recipe, facts: ModelFacts, hw: Hardware, stages: Sequence[str] = STAGES
) -> list[StagePlan]:
    """The plans of `stages` (of generate, train, evaluate) for `recipe` on `hw`."""
    plans: list[StagePlan] = []
    judge_ref = recipe.judge or recipe.teacher
    judge = facts.judge if recipe.judge is not None else facts.teacher
    if "generate" in stages:
        local = [
            (info, ref)
            for info, ref in ((facts.teacher, recipe.teacher), (judge, judge_ref))
            if not ref.endpoint
        ]
        if any(info is None for info, _ in local):
            plans.append(StagePlan("generate", missing=facts.lacking("teacher", "judge")))
        else:
            held = list({info.path: info for info, _ in local if info is not None}.values())
            steps = [[(m, _engine_plan) for m in held]]
            plans.append(_llama_stage("generate", recipe.engine, steps, hw))
    if "mix" in stages and recipe.mix.self_replay:
        if facts.student is None:
            plans.append(StagePlan("mix", missing=facts.lacking("student")))
        else:
            base = facts.student_gguf or estimated_gguf(facts.student, "f16", Path("student.gguf"))
            from labdesk.recipes import EngineSettings

            # as labdesk.train.replay loads it: the recipe's context and slots, every layer
            # offloaded where llama.cpp can (no fitting: replay makes its own settings)
            engine = recipe.engine
            replay = EngineSettings(
                n_ctx=engine.n_ctx, parallel=engine.parallel, n_gpu_layers=999 * hw.llama_offload
            )
            plans.append(_llama_stage("mix", replay, [[(base, _engine_plan)]], hw))
    if "train" in stages:
        if facts.student is None:
            plans.append(StagePlan("train", missing=facts.lacking("student")))
        else:
            device = hw.train_device or training_device(recipe.train)
            phases = recipe.train.phases
            steps_t = tuple(
                (plan_training(facts.student, recipe.train, p, device),) for p in phases
            )
            plans.append(StagePlan("train", steps_t))
    if "evaluate" in stages:
        if facts.student is None:
            plans.append(StagePlan("evaluate", missing=facts.lacking("student")))
        else:
            outtype = recipe.export.outtype
            base = facts.base or estimated_gguf(facts.student, outtype, Path("base.gguf"))
            tuned = facts.tuned or estimated_gguf(facts.student, outtype, Path("merged.gguf"))
            # one model at a time, each answering and scoring in the engine
            steps = [[(base, _engine_plan)], [(tuned, _engine_plan)]]
            plans.append(_llama_stage("evaluate", recipe.engine, steps, hw))
    return plans


def _llama_stage(
    stage: str,
    settings: EngineSettings,
    steps: Sequence[Sequence[tuple[GGUFInfo, Planner]]],
    hw: Hardware,
) -> StagePlan:
    """Plan llama.cpp steps; with "auto" offload, as many layers on the GPU as fit in every step."""

    def plan(layers: int) -> tuple[tuple[MemoryPlan, ...], ...]:
        return tuple(
            tuple(planner(info, settings, layers) for info, planner in step) for step in steps
        )

    if settings.n_gpu_layers != "auto":
        return StagePlan(stage, plan(int(settings.n_gpu_layers)), settings)
    if not hw.llama_offload:
        return StagePlan(stage, plan(0), settings)
    whole = plan(999)
    if hw.vram is None or all(sum(p.vram for p in s) <= hw.vram for s in whole):
        return StagePlan(stage, whole, settings)
    most = max(info.n_layer for step in steps for info, _ in step)
    for layers in range(most, -1, -1):
        planned = plan(layers)
        if all(sum(p.vram for p in s) <= hw.vram for s in planned):
            break
    fitted = settings.model_copy(update={"n_gpu_layers": layers})
    note = (
        f"{stage}: the models do not fit the GPU whole, so {layers} layers of each go on the "
        f"GPU and the rest run on the CPU (slower); set engine.n_gpu_layers to choose"
    )
    return StagePlan(stage, planned, fitted, advice=(note,))


def plan_run(
    recipe: Recipe,
    ws: Workspace,
    *,
    run_name: str | None = None,
    stages: Sequence[str] = STAGES,
    hw: Hardware | None = None,
) -> tuple[list[StagePlan], Hardware]:
    """The plans of `stages` of `recipe` on this machine now, and what it found free."""
    hw = hw or Hardware.here()
    facts = model_facts(recipe, ws, run_name=run_name, stages=stages)
    return plan_stages(recipe, facts, hw, stages), hw


def fitted_recipe(
    recipe: Recipe,
    ws: Workspace,
    stage: str,
    *,
    run_name: str | None = None,
    reporter: Reporter = null_reporter,
) -> Recipe:
    """`recipe` with the engine settings `stage` should run with on this machine now.

    Raises ModelError, saying what to change, when the stage will not fit what is free; reports
    a warning when it fits only by leaving layers on the CPU.
    """
    (plan,), hw = plan_run(recipe, ws, run_name=run_name, stages=(stage,))
    plan.check(hw, where=str(recipe.source or recipe.name))
    for note in plan.advice:
        reporter(Event(stage, "warning", note))
    if plan.engine is None or plan.engine == recipe.engine:
        return recipe
    return recipe.model_copy(update={"engine": plan.engine})


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB"
