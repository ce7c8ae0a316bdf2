"""`labdesk doctor`: the hardware profile, the recipe that fits, and what to fix."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("doctor", help="check this machine and pick the recipe that fits it")
    parser.add_argument("--format", choices=["human", "json"], default="human")
    parser.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    from labdesk.doctor import advice, detect, pick_recipe
    from labdesk.workspace import default_home

    home = default_home()
    report = detect(home)
    recipe, why = pick_recipe(report)
    tips = advice(report)
    if args.format == "json":
        data = asdict(report) | {"recipe": recipe, "why": why, "advice": tips}
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
    for tip in tips:
        console.print(f"[yellow]•[/] {tip}", highlight=False)
    if not tips:
        console.print("[green]nothing to fix[/]")
    return 0
