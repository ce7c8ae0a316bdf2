"""`labdesk run`: the whole LAB flow, taxonomy → generate → mix → train → export → evaluate.

Each stage is the same core call its own command makes. What this module adds is the chain of
fingerprints in ``<run>/state.json``: a stage's key hashes its recipe section(s) and the key of
the stage before it, so a stage is skipped only when everything upstream of it is unchanged, and
an interrupted stage resumes where it stopped (its status stays ``running`` until it finishes).

Before the first stage that loads a model, every pending one is planned against the memory free
now (`labdesk.memory`), so a run that cannot finish stops before it starts. The teacher and the
judge leave memory when generation ends, before the student trains.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labdesk.errors import Cancelled, ModelError, TaxonomyError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.fileio import read_jsonl, write_json
from labdesk.recipes import Recipe
from labdesk.runs import RunPaths
from labdesk.workspace import Workspace

STAGES = ("check", "generate", "mix", "train", "export", "evaluate")


@dataclass
class StageOutcome:
    name: str
    status: str
    """``ran``, ``resumed`` or ``skipped`` (outputs current)."""
    seconds: float


@dataclass
class FlowResult:
    run: RunPaths
    stages: list[StageOutcome] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


class _State:
    """The run's stage ledger: per stage, the key it was made from and whether it finished."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stages: dict[str, dict[str, Any]] = (
            json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        )

    def status(self, stage: str, key: str) -> str:
        entry = self.stages.get(stage)
        if entry is None or entry.get("key") != key:
            return "new"
        return str(entry.get("status"))

    def mark(self, stage: str, key: str, status: str, seconds: float | None = None) -> None:
        entry: dict[str, Any] = {"key": key, "status": status}
        if seconds is not None:
            entry["seconds"] = round(seconds, 3)
        self.stages[stage] = entry
        write_json(self.path, self.stages)


def set_aside(folder: Path) -> Path | None:
    """Move a stage's old outputs out of the way (never delete a user's checkpoints)."""
    if not folder.exists():
        return None
    for n in range(1, 10_000):
        target = folder.with_name(f"{folder.name}.old-{n}")
        if not target.exists():
            folder.rename(target)
            return target
    raise OSError(f"too many old copies beside {folder}")


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_flow(
    recipe: Recipe,
    ws: Workspace,
    *,
    run_name: str | None = None,
    taxonomy_root: Path | None = None,
    reporter: Reporter = null_reporter,
    cancel: threading.Event | None = None,
) -> FlowResult:
    """Run every stage that is not current; returns what ran and a summary of the results."""
    from labdesk.generate.selection import without_skipped
    from labdesk.taxonomy import load_taxonomy

    run = RunPaths(ws.run_dir(run_name or recipe.name))
    run.root.mkdir(parents=True, exist_ok=True)
    write_json(run.recipe, recipe.model_dump(mode="json"))
    state = _State(run.state)
    result = FlowResult(run)
    if recipe.teacher.builtin:
        reporter(
            Event(
                "run",
                "warning",
                "this recipe uses tiny models built on this machine: every stage runs for real, "
                "but the text they write is nonsense. For real results use a recipe sized for "
                "your hardware: `labdesk doctor` picks one, `labdesk recipes list` shows them all.",
            )
        )

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    def stage(
        name: str, key: str, work: Callable[[bool], None], *, restart: Path | None = None
    ) -> None:
        """Run `work(resume)` unless the stage is current for `key`."""
        if cancelled():
            raise Cancelled(f"stopped before {name}; run again to continue")
        status = state.status(name, key)
        if status == "done":
            result.stages.append(StageOutcome(name, "skipped", 0.0))
            reporter(Event("run", "message", f"{name}: up to date", step=name))
            return
        if status == "new" and restart is not None and (kept := set_aside(restart)):
            reporter(
                Event("run", "warning", f"{name}: inputs changed; earlier results kept in {kept}")
            )
        resume = status == "running"
        reporter(Event("run", "start", f"{name}{' (resuming)' if resume else ''}", step=name))
        state.mark(name, key, "running")
        began = time.perf_counter()
        work(resume)
        seconds = time.perf_counter() - began
        state.mark(name, key, "done", seconds)
        result.stages.append(StageOutcome(name, "resumed" if resume else "ran", seconds))

    # check: cheap, always run; upstream errors stop the flow before any model loads
    began = time.perf_counter()
    taxonomy = load_taxonomy(taxonomy_root or ws.ensure_taxonomy())
    errors = [p for p in taxonomy.problems if p.severity == "error"]
    if errors:
        first = errors[0]
        raise TaxonomyError(
            f"{len(errors)} error(s) in the taxonomy; first: {first.message}",
            where=f"{first.file}:{first.line}:{first.col}",
            hint="see them all with `labdesk taxonomy check`",
        )
    # the leaves the run works on (generation reports and prunes the ones it leaves out)
    kept = without_skipped(taxonomy.leaves, recipe.skip_leaves)
    leaves_key = _key(sorted((leaf.path, leaf.content_hash) for leaf in kept))
    result.stages.append(StageOutcome("check", "ran", time.perf_counter() - began))
    state.mark("check", leaves_key, "done", time.perf_counter() - began)

    gen_key = _key(leaves_key, recipe.generate, recipe.teacher, recipe.judge, recipe.engine)
    mix_key = _key(gen_key, recipe.mix, recipe.system_prompt, recipe.student)
    train_key = _key(mix_key, recipe.train, recipe.student)
    export_key = _key(train_key, recipe.export)
    eval_key = _key(export_key, recipe.evaluate, recipe.system_prompt)
    keys = {"generate": gen_key, "mix": mix_key, "train": train_key, "evaluate": eval_key}
    check_memory(recipe, ws, run, [s for s, k in keys.items() if state.status(s, k) != "done"])

    def generate(resume: bool) -> None:
        from labdesk.generate import run_generation
        from labdesk.memory import fitted_recipe
        from labdesk.models.engine import release_all

        staged = fitted_recipe(recipe, ws, "generate", run_name=run.root.name, reporter=reporter)
        try:
            run_generation(taxonomy, staged, run.root, ws=ws, reporter=reporter, cancel=cancel)
        finally:
            release_all()  # the teacher and judge leave memory before the student comes in
        if cancelled():
            raise Cancelled("generation stopped; run again to continue where it left off")

    def mix(resume: bool) -> None:
        from labdesk.train.mix import mix_for_recipe

        leaves = [leaf.path for leaf in kept]
        mix_for_recipe(run, recipe, ws, reporter, leaves=leaves, cancel=cancel)

    def train(resume: bool) -> None:
        from labdesk.train.phases import resolve_student, train_run

        student = resolve_student(recipe.student, ws)
        train_run(run, recipe, student, reporter, resume=resume, stop=cancelled)
        if cancelled():
            raise Cancelled("training stopped at a checkpoint; run again to resume it")

    def export(resume: bool) -> None:
        from labdesk.export.run_export import export_run
        from labdesk.train.phases import resolve_student

        export_run(
            run, recipe, ws, student_dir=resolve_student(recipe.student, ws), reporter=reporter
        )

    def evaluate(resume: bool) -> None:
        from labdesk.evaluate.runner import EvalModels, evaluate_run
        from labdesk.export.registry import find_tuned
        from labdesk.memory import fitted_recipe

        tuned = find_tuned(ws, run.root.name)
        # The same precision for both: the merged GGUF, not the quantized chat model.
        models = EvalModels(Path(tuned.base_gguf), Path(tuned.merged_gguf))
        staged = fitted_recipe(recipe, ws, "evaluate", run_name=run.root.name, reporter=reporter)
        evaluate_run(run, staged, models, reporter=reporter, cancel=cancel)
        if cancelled():
            raise Cancelled("evaluation stopped; its answers so far are cached")

    stage("generate", gen_key, generate)
    stage("mix", mix_key, mix)
    stage("train", train_key, train, restart=run.train)
    stage("export", export_key, export)
    stage("evaluate", eval_key, evaluate, restart=run.evaluation)
    result.summary = summarize(run, ws)
    return result


def check_memory(recipe: Recipe, ws: Workspace, run: RunPaths, stages: list[str]) -> None:
    """Refuse now, saying what to change, if a pending stage will not fit the memory free now
    (rather than after the hours the stages before it take)."""
    if not stages:
        return
    from labdesk.memory import plan_run

    plans, hw = plan_run(recipe, ws, run_name=run.root.name, stages=stages)
    for plan in plans:
        plan.check(hw, where=str(run.root))


def summarize(run: RunPaths, ws: Workspace) -> dict[str, Any]:
    """What the run made, read back from its files (so skipped stages report too)."""
    from labdesk.evaluate.runner import read_report
    from labdesk.export.registry import find_tuned

    summary: dict[str, Any] = {"run": run.root.name}
    if run.generate_report.is_file():
        report = json.loads(run.generate_report.read_text(encoding="utf-8"))
        summary["data"] = {"accepted": report["accepted"], "rejected": report["rejected"]}
    if run.composition.is_file():
        mixed: dict[str, int] = {}
        for row in json.loads(run.composition.read_text(encoding="utf-8")):
            mixed[row["phase"]] = mixed.get(row["phase"], 0) + row["samples"]
        summary["mixed"] = mixed
    losses = {}
    for phase_dir in sorted(p for p in run.train.glob("*") if (p / "loss.jsonl").is_file()):
        rows = read_jsonl(phase_dir / "loss.jsonl")
        if rows:
            losses[phase_dir.name] = {"first": rows[0]["loss"], "last": rows[-1]["loss"]}
    summary["losses"] = losses
    evaluation = read_report(run)
    if evaluation:
        rows = [
            *evaluation["leaves"],
            *([evaluation["forgetting"]] if evaluation["forgetting"] else []),
        ]
        summary["evaluation"] = [
            {k: row.get(k) for k in ("leaf", "metric", "base", "tuned", "delta", "verdict")}
            for row in rows
        ]
        summary["examples"] = evaluation.get("examples", [])
    try:
        summary["model"] = find_tuned(ws, run.root.name).gguf
    except ModelError:  # not exported yet
        summary["model"] = None
    return summary
