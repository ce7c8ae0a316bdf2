"""What keeps the app trustworthy: pause and stop always work, stopped work resumes, errors
arrive as notifications with the fix, and the start-up path stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from textual.widgets import DataTable, OptionList, Select, SelectionList, Static

from labdesk.fileio import read_jsonl
from labdesk.runs import PHASES, RunPaths
from labdesk.tui.app import LabdeskApp
from labdesk.tui.documents_screen import DocumentsScreen
from labdesk.tui.generate_screen import GenerateScreen
from labdesk.tui.models_screen import ModelsScreen
from labdesk.tui.taxonomy_screen import NewLeafDialog, TaxonomyScreen
from labdesk.tui.train_screen import TrainScreen
from labdesk.tui.work import notify_error

from .helpers import settle, tick_only, until
from .test_flow import seed_samples

pytestmark = pytest.mark.anyio
SIZE = (150, 48)
LEAF = "compositional_skills/writing/freeform/haiku"
EMAIL = "compositional_skills/writing/freeform/email_tone"  # a leaf the demo recipe does not skip


def test_help_never_imports_textual() -> None:
    code = (
        "import sys\n"
        "from labdesk.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "import labdesk.tui\n"
        "print('textual' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("False"), out.stdout
    assert "Run `labdesk` with no command to open the terminal app." in out.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_labdesk_without_a_command_opens_the_app_and_quits(workspace_home: Path) -> None:
    """The real entry point in a real (pseudo) terminal: the taxonomy appears, ctrl+q quits."""
    import os
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: `labdesk` with no arguments
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-m", "labdesk"])
    seen = b""
    try:
        while b"compositional_skills" not in seen:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, f"no first screen within 30 s: {seen[-500:]!r}"
            seen += os.read(fd, 65536)
        os.write(fd, b"\x11")  # ctrl+q
        while True:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, "the app did not quit on ctrl+q"
            try:
                if not os.read(fd, 65536):
                    break
            except OSError:  # the child closed the terminal
                break
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (workspace_home / "taxonomy" / "knowledge").is_dir()  # the sample, copied on first run


async def test_palette_offers_every_screen_and_action(workspace_home: Path) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for name in ("Guide", "Taxonomy", "Generate", "Train", "Chat", "Models"):
            assert f"Open {name}" in commands
        await commands["New leaf"].callback()  # type: ignore[misc]
        assert isinstance(app.screen, NewLeafDialog)


async def test_generation_pauses_stops_and_resumes(home: Path, fast_recipe: Path) -> None:
    app = LabdeskApp(recipe=str(fast_recipe), mode="generate")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = tick_only(pilot, LEAF)
        screen.action_start()
        job = screen.job
        assert job is not None
        screen.action_pause()  # the worker holds at its next progress event
        assert job.paused and "paused" in str(screen.query_one("#status", Static).render())
        screen.action_cancel()
        await settle(pilot)
        assert screen.job is None
        assert "stopped" in str(screen.query_one("#status", Static).render())
        assert app.is_running

        manifest = RunPaths(app.run_dir).leaf_manifest(LEAF.replace("/", "__"))
        screen.action_start()  # starting again finishes the leaf
        await settle(pilot)
        table = screen.query_one("#leaf-table", DataTable)
        assert table.get_cell(LEAF, "status") == "done"
        assert yaml.safe_load(manifest.read_text())["complete"] is True


async def test_training_stops_with_a_checkpoint_and_resumes(home: Path, fast_recipe: Path) -> None:
    app = LabdeskApp(recipe=str(fast_recipe), mode="train")
    seed_samples(app)
    run = RunPaths(app.run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        screen.action_start()  # checks every leaf has samples first (a worker), then starts
        await until(pilot, lambda: screen.job is not None)
        assert screen.job is not None
        screen.job.pause()  # held at the first event (mixing)
        screen.action_stop()  # the loop checkpoints after the step it is in, then stops
        await settle(pilot)
        assert screen.job is None
        assert not (run.final_adapter / "adapter_config.json").exists()
        first = read_jsonl(run.phase_dir(PHASES[0]) / "loss.jsonl")
        assert len(first) >= 1

        await pilot.click("#resume")
        await settle(pilot)
        assert (run.final_adapter / "adapter_config.json").is_file()
        steps = [row["step"] for row in read_jsonl(run.phase_dir(PHASES[0]) / "loss.jsonl")]
        assert steps == sorted(set(steps)), "resume repeated or skipped steps"
        phases = screen.query_one("#phases", DataTable)
        assert all(phases.get_cell(p, "state") == "done" for p in PHASES)


async def test_quitting_mid_training_leaves_a_resumable_run(home: Path, fast_recipe: Path) -> None:
    app = LabdeskApp(recipe=str(fast_recipe), mode="train")
    seed_samples(app)
    run = RunPaths(app.run_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TrainScreen)
        screen.action_start()
        await until(pilot, lambda: screen.job is not None)
        assert screen.job is not None
        screen.job.pause()
        await pilot.press("ctrl+q")  # stops the job at its next step, waits for it, quits
    assert app.return_code == 0
    first = read_jsonl(run.phase_dir(PHASES[0]) / "loss.jsonl")
    assert first and not (run.final_adapter / "adapter_config.json").exists()

    again = LabdeskApp(recipe=str(fast_recipe), mode="train")
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.click("#resume")
        await settle(pilot)
    assert (run.final_adapter / "adapter_config.json").is_file()
    steps = [row["step"] for row in read_jsonl(run.phase_dir(PHASES[0]) / "loss.jsonl")]
    assert steps == sorted(set(steps))


async def test_a_broken_recipe_is_a_notification_with_the_fix(
    workspace_home: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nteacher: {builtin: tiny-teacher}\nstudent: {}\n")
    app = LabdeskApp(recipe=str(broken), mode="generate")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, GenerateScreen)
        screen.action_start()
        await settle(pilot)
        assert app.is_running and screen.job is None
        (note,) = [n for n in app._notifications if n.severity == "error"]
        assert note.title == "ConfigError"
        assert "student" in note.message and "fix:" in note.message


async def test_a_full_disk_in_a_library_is_a_notification_with_the_fix(
    workspace_home: Path, tmp_path: Path
) -> None:
    """A library's own write fails with the OS's ENOSPC, which names no file."""
    full = tmp_path / "model.safetensors"
    full.symlink_to("/dev/full")
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        try:
            with open(full, "wb") as handle:
                handle.write(b"weights")
        except OSError as exc:
            notify_error(app, exc)
        await settle(pilot)
        assert app.is_running
        (note,) = [n for n in app._notifications if n.severity == "error"]
        assert note.title == "DiskFull"
        assert note.message.startswith("the disk is full")
        assert "fix: everything written before this is kept" in note.message


async def test_documents_of_a_knowledge_leaf(workspace_home: Path) -> None:
    app = LabdeskApp()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TaxonomyScreen)
        await screen.open_leaf("knowledge/geography/islands/kelderwick/qna.yaml")
        await pilot.press("ctrl+o")
        await settle(pilot)
        docs = app.screen
        assert isinstance(docs, DocumentsScreen)
        assert docs.documents and docs.chunks
        files = docs.query_one("#files", OptionList)
        assert files.option_count == len(docs.documents)
        shown = docs.query(".chunk")
        first = docs.documents[0].path
        assert len(shown) == sum(1 for c in docs.chunks if c.document == first)
        await pilot.press("escape")
        assert isinstance(app.screen, TaxonomyScreen)


async def test_models_screen_says_what_is_missing(workspace_home: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "local.yaml"
    recipe.write_text(
        "name: local\n"
        f"teacher: {{path: {tmp_path / 'missing.gguf'}}}\n"
        "student: {builtin: tiny-student}\n"
    )
    app = LabdeskApp(recipe=str(recipe), mode="models")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ModelsScreen)
        needs = screen.query_one("#needs", DataTable)
        rows = {needs.get_row_at(i)[0]: needs.get_row_at(i) for i in range(needs.row_count)}
        assert set(rows) == {"teacher", "student"}
        assert str(rows["teacher"][3]).startswith("✗ missing")
        assert "built on this machine" in str(rows["student"][3])


async def test_a_recipe_file_stays_the_recipe_and_names_the_run(
    workspace_home: Path, fast_recipe: Path
) -> None:
    app = LabdeskApp(recipe=str(fast_recipe), mode="generate")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        select = app.screen.query_one("#recipe", Select)
        assert select.value == app.recipe_name == str(fast_recipe)
        assert app.run_name == "fast"
        select.value = "tiny"  # picking a packaged recipe: the run named after it follows
        await settle(pilot)
        assert (app.recipe_name, app.run_name) == ("tiny", "tiny")


async def test_f8_picks_or_creates_the_run_every_screen_works_on(workspace_home: Path) -> None:
    from labdesk.fileio import write_json
    from labdesk.taxonomy import load_taxonomy
    from labdesk.tui.widgets import ModeBar, RunPicker

    app = LabdeskApp(mode="generate")
    assert (app.recipe_name, app.run_name) == ("demo", "demo")
    other = RunPaths(app.workspace.run_dir("other"))  # as `labdesk generate other` leaves it
    write_json(other.recipe, {"name": "tiny"})
    email = load_taxonomy(app.taxonomy_root).leaf(EMAIL)
    write_json(
        other.leaf_manifest(email.slug),
        {"complete": True, "inputs": {"content_hash": email.content_hash}},
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        leaves = app.screen.query_one("#leaves", SelectionList)
        assert EMAIL in leaves.selected  # never generated in run `demo`
        await pilot.press("f8")
        await settle(pilot)
        picker = app.screen
        assert isinstance(picker, RunPicker)
        runs = picker.query_one("#runs", OptionList)
        assert [runs.get_option_at_index(i).id for i in range(runs.option_count)] == ["other"]
        runs.highlighted = 0
        runs.action_select()
        await settle(pilot)
        assert (app.run_name, app.recipe_name) == ("other", "tiny")  # the recipe it recorded
        assert "F8 run [b]other[/b]" in app.screen.query_one(ModeBar).render()
        assert EMAIL not in leaves.selected and leaves.selected  # generated there already

        await pilot.press("f8")
        await settle(pilot)
        await pilot.click("#new-name")
        await pilot.press(*"fresh", "enter")
        await settle(pilot)
        assert app.run_name == "fresh" and app.workspace.run_dir("fresh").is_dir()
        assert EMAIL in leaves.selected
