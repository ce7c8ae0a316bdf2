"""`labdesk evaluate RUN`: base vs tuned on the run's held-out questions, closed-book."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from labdesk.cli.runargs import add_run_arguments, open_run

if TYPE_CHECKING:
    from labdesk.evaluate.report import Report


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "evaluate", help="did the run teach the model? base vs tuned per leaf, with the answers"
    )
    add_run_arguments(parser)
    parser.add_argument("--answers", action="store_true", help="print every question and answer")
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.evaluate.runner import EvalModels, evaluate_run
    from labdesk.export.run_export import export_run
    from labdesk.memory import fitted_recipe
    from labdesk.train.phases import resolve_student

    with (
        open_run(args, "labdesk evaluate", existing=True) as (recipe, run, ws),
        ProgressRenderer() as render,
    ):
        # Export is resumable: this is free when the run was exported already.
        student = resolve_student(recipe.student, ws)
        tuned = export_run(run, recipe, ws, student_dir=student, reporter=render)
        # The same precision for both: the merged GGUF, not the quantized chat model.
        models = EvalModels(Path(tuned.base_gguf), Path(tuned.merged_gguf))
        staged = fitted_recipe(recipe, ws, "evaluate", run_name=run.root.name, reporter=render)
        report = evaluate_run(run, staged, models, reporter=render)
    _print(report)
    if args.answers:
        from rich.markdown import Markdown

        console.print(Markdown((run.evaluation / "report.md").read_text(encoding="utf-8")))
    console.print(f"full report with every answer: {run.evaluation / 'report.md'}")
    return 0


def _print(report: Report) -> None:
    from labdesk.cli.evaltable import print_evaluation

    rows = [row.to_dict() for row in report.rows()]
    print_evaluation(rows, report.examples, f"run {report.run}")
