"""Every screen at a fixed terminal size, against a committed SVG baseline.

Snapshot mode (`LabdeskApp(snapshot=True)`) leaves out what changes between identical runs (free
memory); screens show no clocks, temporary paths or timings. Update the baselines after an
intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from labdesk.tui.app import LabdeskApp

from .helpers import settle

SIZE = (130, 40)
SIZES = {"80x24": (80, 24), "140x45": (140, 45)}
"""The smallest usual terminal, and a large one: the main screens are checked at both."""
Snap = Callable[..., bool]
HAIKU = "compositional_skills/writing/freeform/haiku/qna.yaml"


async def _open_haiku(pilot: Pilot[Any]) -> None:
    await settle(pilot)
    await pilot.app.screen.open_leaf(HAIKU)  # type: ignore[attr-defined]
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_taxonomy_screen_at(size: str, workspace_home: Path, snap_compare: Snap) -> None:
    app = LabdeskApp(snapshot=True, recipe="tiny")
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_open_haiku)


@pytest.mark.parametrize("size", SIZES)
def test_generate_screen_at(size: str, workspace_home: Path, snap_compare: Snap) -> None:
    app = LabdeskApp(snapshot=True, recipe="tiny", mode="generate")
    assert snap_compare(app, terminal_size=SIZES[size], run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_train_screen_at(size: str, home: Path, snap_compare: Snap) -> None:
    app = LabdeskApp(snapshot=True, recipe="tiny", mode="train")
    assert snap_compare(app, terminal_size=SIZES[size], run_before=settle)


def test_unsaved_edits_question(workspace_home: Path, snap_compare: Snap) -> None:
    async def edit_then_quit(pilot: Pilot[Any]) -> None:
        await _open_haiku(pilot)
        pilot.app.screen.query_one("#f-created_by").focus()
        await pilot.press(*" too")
        await settle(pilot)
        await pilot.press("ctrl+q")
        await settle(pilot)

    app = LabdeskApp(snapshot=True, recipe="tiny")
    assert snap_compare(app, terminal_size=SIZES["80x24"], run_before=edit_then_quit)


def test_documents_screen(workspace_home: Path, snap_compare: Snap) -> None:
    async def open_documents(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        screen = pilot.app.screen
        await screen.open_leaf("knowledge/geography/islands/kelderwick/qna.yaml")  # type: ignore[attr-defined]
        await pilot.press("ctrl+o")
        await settle(pilot)

    assert snap_compare(LabdeskApp(snapshot=True), terminal_size=SIZE, run_before=open_documents)


def test_new_leaf_dialog(workspace_home: Path, snap_compare: Snap) -> None:
    assert snap_compare(
        LabdeskApp(snapshot=True), terminal_size=SIZE, press=["ctrl+n", *"writing/odes"]
    )


def test_guide_screen(workspace_home: Path, snap_compare: Snap) -> None:
    assert snap_compare(LabdeskApp(snapshot=True, mode="guide"), terminal_size=SIZE)


def test_chat_screen(home: Path, snap_compare: Snap) -> None:
    assert snap_compare(
        LabdeskApp(snapshot=True, mode="chat"), terminal_size=SIZE, run_before=settle
    )


def test_models_screen(workspace_home: Path, snap_compare: Snap) -> None:
    assert snap_compare(
        LabdeskApp(snapshot=True, mode="models"), terminal_size=SIZE, run_before=settle
    )


def test_run_screen(workspace_home: Path, snap_compare: Snap) -> None:
    assert snap_compare(
        LabdeskApp(snapshot=True, mode="run"), terminal_size=SIZE, run_before=settle
    )


@pytest.fixture(autouse=True)
def _same_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "snapshot")
