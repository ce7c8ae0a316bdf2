"""The evaluation as the terminal shows it, for `labdesk evaluate` and `labdesk run` alike."""

from __future__ import annotations

from typing import Any


def print_evaluation(
    rows: list[dict[str, Any]], examples: list[dict[str, Any]], title: str
) -> None:
    """Per leaf base vs tuned (saved report rows), a few answers before and after, and which
    leaves improved or regressed beyond chance (the rows' verdicts)."""
    from rich.markup import escape
    from rich.table import Table

    from labdesk.cli.render import LEAF_WIDTH, console
    from labdesk.evaluate.report import IMPROVED, REGRESSED, UNCLEAR, cells, mark
    from labdesk.pathtext import tail_path

    table = Table("leaf", "metric", "base", "tuned", "change", title=title)
    for row in rows:
        base, tuned, change = cells(row)
        style = {IMPROVED: "green", REGRESSED: "red"}.get(row.get("verdict") or "", "")
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
    if not any(row.get("verdict") for row in rows):
        return  # a report saved before verdicts existed: no line would say anything
    for verdict, label in (
        (IMPROVED, "[green]improved[/]"),
        (REGRESSED, "[red]regressed[/]"),
        (UNCLEAR, "no clear change (too few items, or a change chance explains)"),
    ):
        leaves = [row["leaf"] for row in rows if row.get("verdict") == verdict]
        console.print(f"{label}: {', '.join(leaves) or 'none'}", highlight=False)
