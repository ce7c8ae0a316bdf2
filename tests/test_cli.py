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
