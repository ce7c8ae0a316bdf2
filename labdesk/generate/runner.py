"""Generation over a taxonomy: which leaves need work, their rounds, the run report.

A leaf is skipped when its manifest says it was completed from the same content hash, the same
recipe `generate` section, the same models and the same prompt templates; a leaf whose manifest
matches but is incomplete is resumed; any other leaf starts afresh, alone — keeping its reply
cache, so a settings change that leaves a request as it was costs nothing for that request.
A round that accepts nothing ends the leaf at once: more rounds of the same prompts would
only spend the teacher's time on the same failures.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labdesk.events import Event, Reporter, null_reporter
from labdesk.fileio import write_json
from labdesk.generate.leafrun import LeafRun
from labdesk.generate.models import Models, load_models
from labdesk.generate.pipelines import Pipeline, build_pipeline
from labdesk.generate.report import GenerationReport, LeafReport
from labdesk.generate.selection import select_leaves, split_seeds, without_skipped
from labdesk.generate.state import WRITER, LeafFiles
from labdesk.generate.templates import templates_fingerprint
from labdesk.runs import RunPaths
from labdesk.taxonomy.leaves import Leaf, Seed, leaf_slug

if TYPE_CHECKING:
    from labdesk.documents import Chunk
    from labdesk.recipes import GenerateSettings, Recipe
    from labdesk.taxonomy import Taxonomy
    from labdesk.workspace import Workspace

_STAGE = "generate"


def run_generation(
    taxonomy: Taxonomy,
    recipe: Recipe,
    run_dir: Path,
    *,
    ws: Workspace,
    leaves: Sequence[str] | None = None,
    preview: int | None = None,
    reporter: Reporter = null_reporter,
    cancel: threading.Event | None = None,
) -> GenerationReport:
    """Generate (or with `preview=N`, only try N candidates per leaf) for the chosen leaves.

    `leaves` are leaf paths (or folders holding leaves) inside the taxonomy; default: all.
    """
    kept = without_skipped(
        select_leaves(taxonomy.leaves, leaves), recipe.skip_leaves, reporter=reporter
    )
    models = load_models(recipe, ws)
    if preview is not None:
        from labdesk.generate.preview import preview_leaves

        return preview_leaves(
            kept, recipe, models, ws=ws, count=preview, reporter=reporter, cancel=cancel
        )
    if leaves is None:  # the whole taxonomy: the run keeps data of no other leaf
        _prune(RunPaths(run_dir), taxonomy, kept, reporter)
    return generate_leaves(kept, recipe, run_dir, models, ws=ws, reporter=reporter, cancel=cancel)


# -- generation --------------------------------------------------------------------------------


def generate_leaves(
    leaves: Sequence[Leaf],
    recipe: Recipe,
    run_dir: Path,
    models: Models,
    *,
    ws: Workspace,
    reporter: Reporter = null_reporter,
    cancel: threading.Event | None = None,
) -> GenerationReport:
    """Generate every leaf that needs it into `run_dir`; write and return the run report."""
    paths = RunPaths(run_dir)
    started = time.perf_counter()
    reporter(Event(_STAGE, "start", f"{len(leaves)} leaves", total=len(leaves), done=0))
    reports = []
    try:
        for number, leaf in enumerate(leaves):
            reports.append(
                generate_leaf(leaf, recipe, paths, models, ws=ws, reporter=reporter, cancel=cancel)
            )
            reporter(Event(_STAGE, "progress", done=number + 1, total=len(leaves)))
    finally:
        WRITER.flush()  # the stage's end, also when it stops early: all decided is on disk
    report = GenerationReport(reports, time.perf_counter() - started)
    write_json(paths.generate_report, _merged_report(paths, report).to_json())
    reporter(
        Event(
            _STAGE,
            "done",
            f"{report.accepted} accepted, {report.rejected} rejected in {report.seconds:.1f}s",
            accepted=report.accepted,
            rejected=report.rejected,
        )
    )
    return report


def generate_leaf(
    leaf: Leaf,
    recipe: Recipe,
    paths: RunPaths,
    models: Models,
    *,
    ws: Workspace,
    reporter: Reporter = null_reporter,
    cancel: threading.Event | None = None,
) -> LeafReport:
    settings = recipe.generate
    files = LeafFiles(paths, leaf.slug)
    inputs = {
        "content_hash": leaf.content_hash,
        "generate": settings.model_dump(mode="json"),
        "teacher": models.teacher_name,
        "judge": models.judge_name,
        "prompts": templates_fingerprint(),
    }
    manifest = files.read_manifest()
    if manifest and manifest.get("inputs") == inputs and manifest.get("complete"):
        report = LeafReport.from_json(manifest["report"])
        report.status = "unchanged"
        reporter(
            Event(
                _STAGE,
                "done",
                "unchanged, kept",
                leaf=leaf.path,
                accepted=report.accepted,
                rejected=report.rejected,
            )
        )
        return report
    resuming = bool(manifest and manifest.get("inputs") == inputs)
    if not resuming:
        files.reset()
        manifest = {
            "inputs": inputs,
            "complete": False,
            "rounds_done": 0,
            "elapsed_s": 0.0,
            "tokens": {},
        }
        files.write_manifest(manifest)
    assert manifest is not None
    session_start = time.perf_counter()
    elapsed_before = float(manifest["elapsed_s"])

    pipeline, held_out = leaf_pipeline(leaf, settings, models, ws)
    write_json(files.heldout, [_seed_json(s) for s in held_out])
    accepted, rejected = files.records()
    decided = {r["metadata"]["id"] for r in accepted + rejected}
    run = LeafRun(
        pipeline,
        models,
        system_prompt=recipe.system_prompt,
        files=files,
        decided=decided,
        reporter=reporter,
        cancel=cancel,
    )
    reporter(
        Event(
            _STAGE,
            "start",
            f"{'resuming' if resuming else 'generating'} {leaf.kind.replace('_', ' ')}: "
            f"{pipeline.target} samples, {len(pipeline.seeds)} seeds shown, "
            f"{len(held_out)} held out"
            + (
                f", {len(pipeline.chunks)} chunks, {len(pipeline.facts)} facts"
                if pipeline.chunks
                else ""
            ),
            leaf=leaf.path,
        )
    )
    round_ = int(manifest["rounds_done"])
    tokens = dict(manifest["tokens"])
    target = pipeline.target
    barren = False
    while round_ < settings.max_rounds:
        before = [r for r in accepted if r["metadata"]["round"] < round_]
        need = target - sum(1 for r in before if r["metadata"]["type"] == "qa")
        last = [r for r in before if r["metadata"]["round"] == round_ - 1]
        barren = round_ > 0 and not [r for r in last if r["metadata"]["type"] == "qa"]
        # round 0 always runs: it also writes a knowledge leaf's augmentations
        if (need <= 0 and round_ > 0) or barren:
            break
        count = candidates_for(
            need,
            [r for r in accepted + rejected if r["metadata"]["round"] < round_],
            target,
            settings.overgenerate,
            round_,
        )
        pipeline.start_round(before)
        run.tokens.clear()
        run.run_round(round_, count, before)
        round_ += 1
        for name, value in run.tokens.items():
            tokens[name] = tokens.get(name, 0) + value
        manifest.update(
            rounds_done=round_,
            tokens=tokens,
            elapsed_s=elapsed_before + time.perf_counter() - session_start,
        )
        files.write_manifest(manifest)
        accepted, rejected = files.records()

    report = LeafReport(
        leaf.path,
        leaf.kind,
        "resumed" if resuming else "generated",
        target,
        rounds=round_,
        teacher_tokens=tokens.get("teacher", 0),
        judge_tokens=tokens.get("judge", 0),
        prompt_tokens=tokens.get("prompt", 0),
        seconds=round(float(manifest["elapsed_s"]), 3),
        held_out=len(held_out),
    )
    report.count(accepted, rejected)
    if not report.reached:
        why = (
            f"round {round_} accepted nothing, so the leaf stopped early"
            if barren
            else "generate.max_rounds"
        )
        report.note = (
            f"{report.accepted_qa} of {report.target} samples after {round_} rounds "
            f"({why}): {report.explain()}"
        )
        reporter(Event(_STAGE, "warning", report.note, leaf=leaf.path))
    for path in (files.accepted, files.rejected):  # both exist, even empty: the report says why
        path.touch()
    manifest.update(complete=True, report=report.to_json())
    files.write_manifest(manifest)
    reporter(
        Event(
            _STAGE,
            "done",
            f"{report.accepted} accepted, {report.rejected} rejected",
            leaf=leaf.path,
            accepted=report.accepted,
            rejected=report.rejected,
            metrics={
                "tokens": report.teacher_tokens + report.judge_tokens,
                "seconds": report.seconds,
            },
        )
    )
    return report


def candidates_for(
    need: int, earlier: list[dict[str, Any]], target: int, overgenerate: float, round_: int
) -> int:
    """How many Q&A candidates a round starts: enough for `need` at the leaf's observed yield.

    Round 0 knows no yield yet and uses `overgenerate`; later rounds use what earlier rounds of
    this leaf accepted per candidate (a function of earlier rounds only, so a resumed run plans
    the same round). Never more than four times the target in one round.
    """
    if need <= 0:
        return 0
    qa = [r for r in earlier if r["metadata"]["type"] == "qa"]
    if round_ == 0 or not qa:
        factor = overgenerate
    else:
        accepted = sum(1 for r in qa if "step" not in r["metadata"])
        factor = min(4.0 * overgenerate, 1.25 * len(qa) / max(accepted, 1))
    return max(1, min(4 * target, math.ceil(need * factor)))


def _seed_json(seed: Seed) -> dict[str, Any]:
    return {
        "context": seed.context,
        "qa": [{"question": qa.question, "answer": qa.answer} for qa in seed.qa],
    }


def leaf_pipeline(
    leaf: Leaf, settings: GenerateSettings, models: Models, ws: Workspace
) -> tuple[Pipeline, list[Seed]]:
    """The leaf's pipeline over the seeds the teacher sees (and its chunks), and the held-out
    seeds."""
    seeds, held_out = split_seeds(leaf, settings.held_out_seeds, settings.seed)
    chunks = _chunks(leaf, models, settings.chunk_tokens, ws) if leaf.kind == "knowledge" else []
    return build_pipeline(leaf, seeds, chunks, settings), held_out


def _chunks(leaf: Leaf, models: Models, chunk_tokens: int, ws: Workspace) -> list[Chunk]:
    from labdesk.documents import chunk_documents, documents_for_leaf
    from labdesk.errors import DocumentError

    documents = documents_for_leaf(leaf, ws.cache / "documents")
    chunks = chunk_documents(documents, chunk_tokens, count_tokens=models.teacher.count_tokens)
    if not chunks:
        raise DocumentError(
            f"the documents of {leaf.path} hold no text to generate from",
            where=str(leaf.file),
            hint="check that `document.patterns` match non-empty files",
        )
    return chunks


def _prune(paths: RunPaths, taxonomy: Taxonomy, kept: Sequence[Leaf], reporter: Reporter) -> None:
    """Generated data of leaves the run no longer works on goes (it is derived data). A leaf
    gone from the taxonomy loses its reply cache too; a leaf the recipe's `skip_leaves` left
    out keeps it, so taking it back in costs the teacher nothing for unchanged requests."""
    if not paths.generated.is_dir():
        return
    in_taxonomy = {leaf.slug for leaf in taxonomy.leaves}
    working = {leaf.slug for leaf in kept}
    for manifest in sorted(paths.generated.glob("*.manifest.json")):
        slug = manifest.name.removesuffix(".manifest.json")
        if slug not in in_taxonomy:
            LeafFiles(paths, slug).remove()
            why = "no longer a leaf of the run's taxonomy"
        elif slug not in working:
            LeafFiles(paths, slug).reset()
            why = "left out by the recipe's skip_leaves (its teacher replies stay cached)"
        else:
            continue
        reporter(Event(_STAGE, "message", f"removed the samples of {slug}: {why}"))


def _merged_report(paths: RunPaths, report: GenerationReport) -> GenerationReport:
    """This invocation's leaves plus the other leaves already reported in this run."""
    mine = {leaf.leaf for leaf in report.leaves}
    others: list[LeafReport] = []
    if paths.generate_report.exists():
        try:
            old = GenerationReport.from_json(json.loads(paths.generate_report.read_text("utf-8")))
        except (ValueError, KeyError, TypeError):
            old = GenerationReport([])
        others = [
            leaf
            for leaf in old.leaves
            if leaf.leaf not in mine and paths.leaf_manifest(leaf_slug(leaf.leaf)).exists()
        ]
    return GenerationReport(others + report.leaves, report.seconds)
