from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["torch", "transformers", "peft", "mlx", "llama_cpp", "textual"]


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys, contextlib, io\n"
        "from labdesk.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try: main(['--help'])\n"
        "    except SystemExit: pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []


def test_usage_error_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "labdesk", "no-such-command"], capture_output=True, text=True
    )
    assert result.returncode == 2


def test_recipe_error_is_one_line_without_traceback(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nteacher: {builtin: nope}\nstudent: {builtin: tiny-student}\n")
    result = subprocess.run(
        [sys.executable, "-m", "labdesk", "recipes", "show", str(bad)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{bad}:2:20" in result.stderr


def test_every_stage_names_its_run_the_same_way() -> None:
    """`RUN` (or `--run RUN`) on every stage; issue 16 had `evaluate RUN` but `train --run`."""
    from labdesk.cli.main import build_parser
    from labdesk.cli.runargs import run_name

    parser = build_parser()
    for command in (["run"], ["generate"], ["mix"], ["train"], ["export", "run"], ["evaluate"]):
        for spelling in (["mine"], ["--run", "mine"]):
            args = parser.parse_args([*command, *spelling, "--recipe", "tiny"])
            assert run_name(args) == "mine", command
        assert run_name(parser.parse_args(command)) is None  # default: the recipe's name


def test_libraries_are_quiet_unless_asked(tmp_path) -> None:
    code = (
        "import logging, warnings, contextlib, sys\n"
        "from labdesk.cli.quiet import quiet_libraries\n"
        "quiet = sys.argv[1] == 'quiet'\n"
        "with quiet_libraries() if quiet else contextlib.nullcontext():\n"
        "    from transformers.utils import logging as hf_logging\n"
        "    hf_logging.get_logger('transformers.modeling_utils').warning('NOISE-LOG')\n"
        "    logging.getLogger('bitsandbytes.backends.cpu.ops').warning('NOISE-BNB')\n"
        "    warnings.warn('NOISE-WARN', FutureWarning)\n"
        "    logging.getLogger('labdesk.x').error('STILL-SHOWN')\n"
        "logging.getLogger('after').warning('AFTER')\n"
    )
    for mode, noise in (("quiet", False), ("verbose", True)):
        out = subprocess.run(
            [sys.executable, "-c", code, mode], capture_output=True, text=True, check=True
        )
        for word in ("NOISE-LOG", "NOISE-BNB", "NOISE-WARN"):
            assert (word in out.stderr) is noise, (mode, word, out.stderr)
        assert "STILL-SHOWN" in out.stderr and "AFTER" in out.stderr  # errors; and restored
