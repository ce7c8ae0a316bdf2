"""`labdesk doctor`: the hardware profile, the recipe that fits, and what to fix."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

GB = 1024**3


def register(sub: Any) -> None:
    parser = sub.add_parser("doctor", help="check this machine and pick the recipe that fits it")
    parser.add_argument("--format", choices=["human", "json"], default="human")
    parser.add_argument(
        "--recipe", help="plan this recipe's memory here (default: the recipe that fits)"
    )
    parser.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from labdesk.doctor import advice, detect, hardware, memory_advice, pick_recipe
    from labdesk.memory import model_facts, plan_stages
    from labdesk.recipes import load_recipe
    from labdesk.workspace import Workspace, default_home

    home = default_home()
    report = detect(home)
    recipe, why = pick_recipe(report)
    if args.recipe:
        recipe, why = args.recipe, "asked for"
    chosen = load_recipe(recipe)
    hw = hardware(report, chosen)
    facts = model_facts(chosen, Workspace(home), build=False)
    plans = plan_stages(chosen, facts, hw)
    tips = advice(report) + memory_advice(recipe, plans, hw)
    if args.format == "json":
        memory = [
            {"stage": p.stage, "ram_gb": p.peak_ram / GB, "vram_gb": p.peak_vram / GB}
            for p in plans
            if not p.missing
        ]
        data = asdict(report) | {"recipe": recipe, "why": why, "memory": memory, "advice": tips}
        print(json.dumps(data, indent=2))
        return 0

    from rich.table import Table

    from labdesk.cli.render import console

    table = Table(show_header=False, box=None)
    table.add_row("system", f"{report.os} {report.arch}")
    table.add_row("cpu", f"{report.cpu} ({report.cores} cores)")
    table.add_row("memory", f"{report.ram_gb:g} GB" + (" unified" if report.apple_silicon else ""))
    gpus = ", ".join(f"{g.name} ({g.vram_gb:g} GB)" for g in report.gpus) or "none"
    table.add_row("gpu", gpus)
    table.add_row("llama.cpp offload", "yes" if report.llama_gpu_offload else "no (CPU build)")
    table.add_row("workspace", f"{home} — {report.disk_free_gb:g} GB free")
    for dist, version in report.packages.items():
        table.add_row(dist, version or "[red]not installed[/]")
    console.print(table)
    console.print(f"\n[bold]recipe:[/] {recipe} — {why}")
    console.print(f"  run it with: labdesk run --recipe {recipe}")
    for plan in plans:
        if not plan.missing:
            gpu = f" + {plan.peak_vram / GB:.1f} GiB GPU" if plan.peak_vram else ""
            console.print(f"  {plan.stage}: needs {plan.peak_ram / GB:.1f} GiB RAM{gpu} at most")
    for tip in tips:
        console.print(f"[yellow]•[/] {tip}", highlight=False)
    if not tips:
        console.print("[green]nothing to fix[/]")
    return 0
