"""The evaluation as the terminal shows it, for `labdesk evaluate` and `labdesk run` alike."""

from __future__ import annotations

from typing import Any


def print_evaluation(
    rows: list[dict[str, Any]], examples: list[dict[str, Any]], title: str
) -> None:
    """Per leaf base vs tuned (saved report rows), a few answers before and after, and which
    leaves improved or regressed."""
    from rich.markup import escape
    from rich.table import Table

    from labdesk.cli.render import LEAF_WIDTH, console
    from labdesk.evaluate.report import cells, mark
    from labdesk.pathtext import tail_path

    table = Table("leaf", "metric", "base", "tuned", "change", title=title)
    for row in rows:
        base, tuned, change = cells(row)
        delta = row["delta"]
        style = "green" if delta and delta > 0 else "red" if delta and delta < 0 else ""
        table.add_row(
            tail_path(row["leaf"], LEAF_WIDTH),
            row["metric"],
            base,
            tuned,
            f"[{style}]{change}[/]" if style else change,
        )
    console.print(table)
    if examples:
        before = Table("question", "base", "tuned", title="before and after (closed-book)")
        for example in examples:
            before.add_row(
                escape(example["question"]),
                escape(mark(example["base"])),
                escape(mark(example["tuned"])),
            )
        console.print(before)
    improved = [row["leaf"] for row in rows if row["delta"] is not None and row["delta"] > 0]
    regressed = [row["leaf"] for row in rows if row["delta"] is not None and row["delta"] < 0]
    console.print(f"[green]improved[/]: {', '.join(improved) or 'none'}", highlight=False)
    console.print(f"[red]regressed[/]: {', '.join(regressed) or 'none'}", highlight=False)
