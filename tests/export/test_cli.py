"""`labdesk export gguf` as a user runs it: a real model folder in, checked GGUF files out."""

from __future__ import annotations

from pathlib import Path

from labdesk.models.ggufinfo import read_gguf
from tests.export.helpers import export_cli as _export


def test_converts_and_quantizes_the_real_fixture(stories_hf: Path, tmp_path: Path) -> None:
    out = tmp_path / "stories-f16.gguf"
    result = _export(str(stories_hf), "--quantize", "q8_0", "-o", str(out))
    assert result.returncode == 0, result.stderr
    quantized = tmp_path / "stories-f16-q8_0.gguf"
    assert f"wrote {out}" in result.stdout and f"wrote {quantized}" in result.stdout
    assert read_gguf(out).architecture == "llama"
    assert quantized.stat().st_size < out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == [quantized.name, out.name]  # no leftovers


def test_a_folder_without_a_model_is_a_clear_error(tmp_path: Path) -> None:
    result = _export(str(tmp_path), "-o", str(tmp_path / "x.gguf"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "config.json" in result.stderr
    assert not (tmp_path / "x.gguf").exists()
