"""The terminal output of long commands: one line per stage with an ETA in a terminal, plain
timestamped lines as things happen when piped."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from labdesk.cli.render import ProgressRenderer
from labdesk.evaluate.report import ACCURACY
from labdesk.events import Event

LEAVES = [
    "compositional_skills/extraction/grounded/meeting_action_items",
    "compositional_skills/writing/freeform/haiku",
]


def _generation() -> list[Event]:
    events = [Event("generate", "start", "2 leaves", total=2, done=0)]
    for number, leaf in enumerate(LEAVES, start=1):
        events.append(Event("generate", "start", "generating", leaf=leaf))
        for step in ("write_question", "judge_question"):
            events += [
                Event("generate", leaf=leaf, step=step, done=i, total=50, accepted=i // 2)
                for i in range(1, 51)
            ]
        events.append(Event("generate", "done", "6 accepted, 1 rejected", leaf=leaf))
        events.append(Event("generate", done=number, total=2))
    return events


def _training() -> list[Event]:
    return [
        Event("train", step="knowledge_1", done=i, total=40, metrics={"loss": 2.0, "eta_s": 40 - i})
        for i in range(1, 41)
    ]


def test_piped_output_is_a_line_per_event_thinned_out() -> None:
    out = io.StringIO()
    with ProgressRenderer(Console(file=out, force_terminal=False, width=200)) as render:
        for event in [*_generation(), *_training()]:
            render(event)
    lines = out.getvalue().splitlines()
    assert all(re.match(r"\[\d+:\d\d\] ", line) for line in lines), lines
    # the messages, each item's first and last progress line (fast items: no more than that)
    assert len(lines) <= 20, lines
    text = "\n".join(lines)
    assert "generate: …/grounded/meeting_action_items: 6 accepted, 1 rejected" in text
    assert "generate 1/2 · …/writing/freeform/haiku · write_question · 0 kept" in text
    assert "generate 1/2 · …/writing/freeform/haiku · write_question · 25 kept" in text
    assert "\n[0:00] generate 2/2\n" in text
    assert "train 40/40 · knowledge_1 · loss 2.000 · eta 0:00" in text


def test_a_terminal_gets_one_line_per_stage() -> None:
    out = io.StringIO()
    renderer = ProgressRenderer(Console(file=out, force_terminal=True, width=120))
    with renderer as render:
        for event in [*_generation(), *_training()]:
            render(event)
        (generate, train) = renderer.progress.tasks
        assert generate.description == "generate" and generate.completed == 1.0
        assert train.fields["now"] == "knowledge_1 · loss 2.000"
        assert train.fields["clock"].endswith("eta 0:00")
    assert "generate: …/writing/freeform/haiku: 6 accepted" in out.getvalue()


def test_an_evaluation_without_verdicts_prints_no_verdict_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A report saved before rows carried verdicts: its table, and no "improved: none" lines."""
    from labdesk.cli.evaltable import print_evaluation

    scores = {"base": (0.1, 20, 0.03, 0.3), "tuned": (0.4, 20, 0.2, 0.6)}
    row = {
        role: dict(zip(("value", "n", "low", "high"), s, strict=True)) for role, s in scores.items()
    }
    print_evaluation(
        [{"leaf": "knowledge/geography/kelderwick", "metric": ACCURACY, **row, "delta": 0.3}],
        [],
        "old run",
    )
    out = capsys.readouterr().out
    assert out.startswith("old run") and "(n=20)" in out  # the table, at any terminal width
    assert "improved" not in out and "no clear change" not in out
