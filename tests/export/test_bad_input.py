"""Bad input gives a clear ModelError and never leaves a partial file behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from labdesk.errors import ModelError
from labdesk.export.gguf import convert_model


@pytest.fixture
def stories_copy(stories_hf: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(stories_hf, tmp_path / "model"))


def _convert_fails(model_dir: Path, out_dir: Path, match: str) -> ModelError:
    with pytest.raises(ModelError, match=match) as info:
        convert_model(model_dir, out_dir / "out.gguf", outtype="f32")
    assert list(out_dir.glob("*.gguf*")) == []
    assert list(out_dir.glob(".*partial")) == []
    return info.value


def test_unsupported_architecture(stories_copy: Path, tmp_path: Path) -> None:
    config = json.loads((stories_copy / "config.json").read_text())
    (stories_copy / "config.json").write_text(json.dumps({**config, "model_type": "gpt2"}))
    error = _convert_fails(stories_copy, tmp_path, "architecture 'gpt2' is not supported")
    assert error.where and error.where.endswith("config.json")
    assert error.hint and "llama" in error.hint


def test_missing_tokenizer(stories_copy: Path, tmp_path: Path) -> None:
    for name in ("tokenizer.model", "tokenizer.json"):
        (stories_copy / name).unlink()
    _convert_fails(stories_copy, tmp_path, "no supported tokenizer")


def test_truncated_safetensors(stories_copy: Path, tmp_path: Path) -> None:
    weights = stories_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    error = _convert_fails(stories_copy, tmp_path, r"tensor '.+' ends at byte \d+ but the file")
    assert error.hint and "truncated" in error.hint


def test_disk_filling_mid_write_leaves_nothing(stories_hf: Path, tmp_path: Path) -> None:
    """A real file-size limit (RLIMIT_FSIZE) in a child process stands in for a full disk."""
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        from pathlib import Path
        from labdesk.errors import ModelError
        from labdesk.export.gguf import convert_model
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write(), not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))
        try:
            convert_model(Path({str(stories_hf)!r}), Path({str(tmp_path / "out.gguf")!r}), outtype="f32")
        except ModelError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr
    assert "could not write tensor blk." in done.stdout
    assert "has room for the file" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_nan_weights_are_named(tiny_spm_dir: Path, tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import load_file, save_file

    tensors = load_file(tiny_spm_dir / "model.safetensors")
    tensors["model.layers.1.mlp.up_proj.weight"][0, 0] = np.nan
    save_file(tensors, tiny_spm_dir / "model.safetensors", metadata={"format": "pt"})
    _convert_fails(
        tiny_spm_dir,
        tmp_path,
        r"'model\.layers\.1\.mlp\.up_proj\.weight' \(blk\.1\.ffn_up\.weight\) holds NaN",
    )


@pytest.fixture
def tiny_spm_dir(tiny_spm: object, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_spm.hf_dir, tmp_path / "tiny"))  # type: ignore[attr-defined]
