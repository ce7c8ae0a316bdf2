"""The sample viewer: lazy line index, only visible rows drawn, drops rewritten atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.app import App, ComposeResult

from labdesk.fileio import read_jsonl
from labdesk.tui.jsonl_view import BLOCK, JsonlView, LineIndex, summarize

pytestmark = pytest.mark.anyio


def sample(i: int, *, reason: str | None = None) -> dict[str, object]:
    meta: dict[str, object] = {"type": "qa", "id": f"s{i}"}
    if reason:
        meta.update(step="judge", reason=reason)
    return {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": f"question {i}?"},
            {"role": "assistant", "content": f"answer {i}"},
        ],
        "metadata": meta,
    }


def write_samples(path: Path, count: int, pad: int = 0) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            row = sample(i)
            row["metadata"]["pad"] = "x" * pad  # type: ignore[index]
            out.write(json.dumps(row) + "\n")


def test_index_reads_lazily_and_ignores_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    write_samples(path, 3000, pad=1000)  # ~3 MB: several blocks
    with path.open("a") as out:
        out.write('{"torn": ')
    index = LineIndex(path)
    index.scan(min_lines=10, max_bytes=BLOCK)
    assert 10 <= len(index) < 3000 and not index.complete
    index.scan()
    assert len(index) == 3000 and index.complete
    assert json.loads(index.line(2999))["metadata"]["id"] == "s2999"
    with path.open("a") as out:  # the torn line is finished, as a running generation would
        out.write("1}\n")
    assert index.scan() and len(index) == 3001
    assert json.loads(index.line(3000)) == {"torn": 1}
    index.close()


def test_summary_shows_question_answer_and_why_rejected() -> None:
    kind, text = summarize(sample(1, reason="off topic"))
    assert kind == "qa"
    assert text.startswith("✗ judge: off topic") and "question 1?" in text and "answer 1" in text


class ViewerApp(App[None]):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield JsonlView(id="view")

    def on_mount(self) -> None:
        view = self.query_one(JsonlView)
        view.open(self.path)
        view.focus()


async def test_browse_and_drop_samples_by_hand(tmp_path: Path) -> None:
    path = tmp_path / "leaf.jsonl"
    write_samples(path, 5000)
    app = ViewerApp(path)
    async with app.run_test(size=(100, 20)) as pilot:
        view = app.query_one(JsonlView)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert view.count == 5000
        assert "question 0?" in view.render_line(0).text
        assert len(view._rows) < 100  # only what was drawn was parsed
        await pilot.press("end")
        assert view.cursor == 4999
        assert view.scroll_offset.y > 4900
        await pilot.press("home", "down", "x", "x")  # drop rows 1 and 2
        assert view.dropped == {1, 2}
        view.writable = False  # as while a generation appends to the file
        await pilot.press("w")
        await pilot.pause()
        assert view.count == 5000 and view.dropped == {1, 2}
        view.writable = True
        await pilot.press("w")
        await pilot.pause()
        assert view.count == 4998 and not view.dropped

    kept = read_jsonl(path)
    assert len(kept) == 4998
    assert [r["metadata"]["id"] for r in kept[:2]] == ["s0", "s3"]
    dropped = read_jsonl(tmp_path / "leaf.dropped.jsonl")
    assert [d["record"]["metadata"]["id"] for d in dropped] == ["s1", "s2"]


async def test_no_drop_while_another_process_works_on_the_run(tmp_path: Path) -> None:
    """The generate screen guards a rewrite with the run's lock: a `labdesk generate` still
    appending to the file would lose the lines written after the rewrite read it."""
    from labdesk.runlock import hold_run
    from labdesk.runs import RunPaths

    run = RunPaths(tmp_path / "run")
    path = run.accepted("leaf")
    path.parent.mkdir(parents=True)
    write_samples(path, 10)
    app = ViewerApp(path)
    async with app.run_test(size=(100, 20)) as pilot:
        view = app.query_one(JsonlView)
        view.write_guard = lambda: hold_run(run, "the labdesk app: dropping samples")
        await app.workers.wait_for_complete()
        await pilot.press("x")
        with hold_run(run, "labdesk generate"):
            await pilot.press("w")
            await pilot.pause()
        assert len(read_jsonl(path)) == 10 and view.dropped == {0}
        (note,) = [n for n in app._notifications if n.severity == "error"]
        assert "in use by this process (labdesk generate)" in note.message
        await pilot.press("w")
        await pilot.pause()
    assert len(read_jsonl(path)) == 9
