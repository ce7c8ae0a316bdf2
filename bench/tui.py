"""How fast the app appears, and how fast the sample viewer opens a 100 MB file.

1. First screen: a fresh Python process imports the app, mounts it headless and renders the
   taxonomy screen (the sample taxonomy, in a temporary workspace). Baselines in the same run:
   the interpreter alone, and a bare Textual app with the same frame (header, tree, footer): the
   floor any Textual app pays on this machine.
2. Viewer: a 100 MB samples JSONL (realistic records, ~100k lines) is generated in a temporary
   folder; we time `JsonlView.open` until the first page is drawn, and the background index of
   the whole file. Baseline: reading the whole file with `labdesk.fileio.read_jsonl`, what a
   viewer that loads everything first would pay.

Targets: first screen <= 0.5 s; the viewer's first page <= 0.5 s.
    .venv/bin/python bench/tui.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 3
TARGET_S = 0.5

FIRST_SCREEN = """
import time
t0 = time.perf_counter()
from labdesk.tui.app import LabdeskApp
from labdesk.tui.taxonomy_screen import TaxonomyScreen

class Probe(LabdeskApp):
    async def on_mount(self):
        self.call_after_refresh(self.done)  # queued before the screen's own after-frame work
        await super().on_mount()

    def done(self):
        screen = self.screen
        if not isinstance(screen, TaxonomyScreen) or not screen.query_one("#leaves").root.children:
            self.call_after_refresh(self.done)  # that frame did not show the taxonomy yet
            return
        print(time.perf_counter() - t0)
        self.exit()

Probe().run(headless=True, size=(120, 40))
"""

BARE_TEXTUAL = """
import time
t0 = time.perf_counter()
from textual.app import App
from textual.widgets import Footer, Header, Tree

class Bare(App):
    BINDINGS = [("ctrl+q", "quit", "Quit")]

    def compose(self):
        yield Header()
        yield Tree("taxonomy")
        yield Footer()

    def on_mount(self):
        self.call_after_refresh(self.done)

    def done(self):
        print(time.perf_counter() - t0)
        self.exit()

Bare().run(headless=True, size=(120, 40))
"""


def process(code: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall time of the whole process until the first screen, time inside Python)."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    inner = float(out.stdout.strip().splitlines()[-1]) if out.stdout.strip() else 0.0
    return wall, inner


def make_samples(path: Path, megabytes: int) -> int:
    words = [
        "the",
        "teacher",
        "wrote",
        "this",
        "answer",
        "about",
        "the",
        "island's",
        "tides",
        "and",
        "its",
        "harbour",
    ]
    lines = 0
    with path.open("w", encoding="utf-8") as out:
        while out.tell() < megabytes * 1_000_000:
            answer = " ".join(words[(lines + i) % len(words)] for i in range(120))
            record = {
                "messages": [
                    {"role": "system", "content": "I am a helpful assistant."},
                    {"role": "user", "content": f"Question {lines}: what about the tides?"},
                    {"role": "assistant", "content": answer},
                ],
                "metadata": {
                    "leaf": "knowledge/x",
                    "type": "qa",
                    "id": f"s{lines}",
                    "scores": {"pair": 3},
                },
            }
            out.write(json.dumps(record) + "\n")
            lines += 1
    return lines


async def viewer_first_page(path: Path) -> tuple[float, float, int]:
    from textual.app import App, ComposeResult

    from labdesk.tui.jsonl_view import JsonlView

    class Viewer(App[None]):
        def compose(self) -> ComposeResult:
            yield JsonlView()

    app = Viewer()
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(JsonlView)
        start = time.perf_counter()
        view.open(path)
        page = [view.render_line(y).text for y in range(view.size.height)]  # the first frame
        first_page = time.perf_counter() - start
        assert "Question 0" in page[0] and f"Question {len(page) - 1}" in page[-1]
        await app.workers.wait_for_complete()
        indexed = time.perf_counter() - start
        await pilot.press("end")  # the last page, once indexed, is as quick
        assert f"Question {view.count - 1}:" in view.render_line(view.size.height - 1).text
        return first_page, indexed, view.count


def main() -> None:
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LABDESK_HOME": str(Path(tmp) / "home")}
        process("pass", env)  # warm the OS file cache for every run alike
        process(FIRST_SCREEN, env)  # first run also copies the sample taxonomy
        interp = statistics.median(process("print(0)", env)[0] for _ in range(RUNS))
        bare = [process(BARE_TEXTUAL, env) for _ in range(RUNS)]
        ours = [process(FIRST_SCREEN, env) for _ in range(RUNS)]
        rows.append(("python interpreter alone (process)", interp, "baseline"))
        rows.append(
            (
                "bare Textual app, first frame (process)",
                statistics.median(w for w, _ in bare),
                "baseline",
            )
        )
        rows.append(
            (
                "bare Textual app, import+mount+render",
                statistics.median(i for _, i in bare),
                "baseline",
            )
        )
        ours_wall = statistics.median(w for w, _ in ours)
        ours_inner = statistics.median(i for _, i in ours)
        rows.append(("labdesk taxonomy screen, first frame (process)", ours_wall, ""))
        rows.append(
            (
                "labdesk taxonomy screen, import+mount+render",
                ours_inner,
                "ok" if ours_inner <= TARGET_S else f"over {TARGET_S}s target",
            )
        )

        path = Path(tmp) / "samples.jsonl"
        lines = make_samples(path, 100)
        size_mb = path.stat().st_size / 1e6
        start = time.perf_counter()
        from labdesk.fileio import read_jsonl

        loaded = len(read_jsonl(path))
        naive = time.perf_counter() - start
        assert loaded == lines
        first_page, indexed, counted = asyncio.run(viewer_first_page(path))
        assert counted == lines
        rows.append((f"read_jsonl whole {size_mb:.0f} MB file ({lines} lines)", naive, "baseline"))
        rows.append(
            (
                "JsonlView.open → first page drawn",
                first_page,
                "ok" if first_page <= TARGET_S else f"over {TARGET_S}s target",
            )
        )
        rows.append(("JsonlView background index of every line", indexed, "UI stays live"))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{os.cpu_count()} CPUs, load average {load:.1f} while measuring")
    width = max(len(name) for name, _, _ in rows)
    print(f"{'measurement':<{width}}  {'seconds':>8}  note")
    print("-" * (width + 24))
    for name, seconds, note in rows:
        print(f"{name:<{width}}  {seconds:>8.3f}  {note}")


if __name__ == "__main__":
    main()
