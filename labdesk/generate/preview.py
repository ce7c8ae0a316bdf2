"""`labdesk generate --preview N`: a few candidates per leaf through every step, nothing kept.

What a person reads before spending an hour of teacher time: for each candidate, what every
step wrote or said, and whether the judges kept it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from labdesk.events import Reporter, null_reporter
from labdesk.generate.candidates import Candidate
from labdesk.generate.leafrun import LeafRun
from labdesk.generate.models import Models
from labdesk.generate.report import GenerationReport, LeafReport

if TYPE_CHECKING:
    from labdesk.recipes import Recipe
    from labdesk.taxonomy.leaves import Leaf
    from labdesk.workspace import Workspace


def preview_leaves(
    leaves: Sequence[Leaf],
    recipe: Recipe,
    models: Models,
    *,
    ws: Workspace,
    count: int,
    reporter: Reporter = null_reporter,
    cancel: threading.Event | None = None,
) -> GenerationReport:
    """Run `count` candidates per leaf through every step, writing nothing; keep the verdicts."""
    from labdesk.generate.runner import leaf_pipeline

    reports = []
    started = time.perf_counter()
    for leaf in leaves:
        pipeline, held_out = leaf_pipeline(leaf, recipe.generate, models, ws)
        pipeline.start_round([])
        run = LeafRun(
            pipeline, models, system_prompt=recipe.system_prompt, reporter=reporter, cancel=cancel
        )
        leaf_started = time.perf_counter()
        candidates = run.run_round(0, count, augment_chunks=2)
        report = LeafReport(
            leaf.path,
            leaf.kind,
            "preview",
            count,
            teacher_tokens=run.tokens["teacher"],
            judge_tokens=run.tokens["judge"],
            prompt_tokens=run.tokens["prompt"],
            seconds=round(time.perf_counter() - leaf_started, 3),
            held_out=len(held_out),
        )
        report.samples = [_preview_sample(c) for c in candidates]
        report.accepted = sum(1 for c in candidates if c.alive)
        report.accepted_qa = sum(1 for c in candidates if c.alive and c.type == "qa")
        report.rejected = len(candidates) - report.accepted
        reports.append(report)
    return GenerationReport(reports, time.perf_counter() - started)


def _preview_sample(candidate: Candidate) -> dict[str, Any]:
    return {
        "id": candidate.id,
        "type": candidate.type,
        "accepted": candidate.alive,
        "step": candidate.rejection[0] if candidate.rejection else None,
        "reason": candidate.rejection[1] if candidate.rejection else None,
        "trace": [list(item) for item in candidate.trace],
    }
