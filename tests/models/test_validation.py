"""Bad model files and models too big are clear ModelErrors, raised before llama.cpp runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labdesk.errors import ModelError
from labdesk.memory import check_fits, plan_llama
from labdesk.models.engine import resolve_gpu_layers
from labdesk.models.ggufinfo import read_gguf
from labdesk.models.types import GenRequest

from .conftest import load


def test_reads_dimensions_of_a_real_model(stories_gguf: Path) -> None:
    info = read_gguf(stories_gguf)
    assert (info.architecture, info.n_layer, info.n_embd, info.n_head, info.n_head_kv) == (
        "llama",
        5,
        64,
        8,
        4,
    )
    assert info.n_vocab == 512
    assert 900_000 < info.weight_bytes < stories_gguf.stat().st_size
    assert info.kv_bytes_per_token() == 2 * 5 * 4 * 8 * 2


def test_truncated_file(stories_gguf: Path, tmp_path: Path) -> None:
    data = stories_gguf.read_bytes()
    for size, words in ((len(data) - 1000, "truncated"), (4000, "header|truncated"), (3, "magic")):
        cut = tmp_path / f"cut{size}.gguf"
        cut.write_bytes(data[:size])
        with pytest.raises(ModelError, match=words) as err:
            load(cut)
        assert str(cut) in str(err.value)


def test_corrupt_header(stories_gguf: Path, tmp_path: Path) -> None:
    data = bytearray(stories_gguf.read_bytes())
    data[8:24] = b"\xff" * 16  # tensor and key counts become absurd
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="header"):
        load(bad)


def test_not_a_gguf(tmp_path: Path) -> None:
    text = tmp_path / "model.gguf"
    text.write_text("<html>404</html>")
    with pytest.raises(ModelError, match="not a GGUF"):
        load(text)
    with pytest.raises(ModelError, match="not found"):
        load(tmp_path / "missing.gguf")


def test_unknown_architecture(stories_gguf: Path, tmp_path: Path) -> None:
    # The value of general.architecture, rewritten in place (same length, file stays intact).
    key = b"general.architecture" + (8).to_bytes(4, "little") + (5).to_bytes(8, "little")
    data = stories_gguf.read_bytes().replace(key + b"llama", key + b"zorba", 1)
    odd = tmp_path / "odd.gguf"
    odd.write_bytes(data)
    with pytest.raises(ModelError, match="unknown model architecture 'zorba'"):
        load(odd)


def test_too_large_for_memory_is_refused_before_loading(stories_gguf: Path) -> None:
    # 64 sequences × 2^24 tokens of KV cache is ~690 GB: more than any laptop has free.
    with pytest.raises(ModelError, match=r"needs about .* GiB of RAM .* free") as err:
        load(stories_gguf, n_ctx=2**24, parallel=64)
    assert err.value.hint and "n_ctx" in err.value.hint


def test_memory_plan_counts_weights_and_kv(stories_gguf: Path) -> None:
    info = read_gguf(stories_gguf)
    plan = plan_llama(info, n_ctx_total=1000, n_batch=512)
    assert plan.kv_cache == 640 * 1000
    assert plan.total > plan.weights + plan.kv_cache
    assert (plan.device, plan.vram, plan.ram) == ("cpu", 0, plan.total)
    check_fits(plan, where="x", free_ram=plan.total)
    with pytest.raises(ModelError, match="of RAM"):
        check_fits(plan, where="x", free_ram=plan.total - 1)


def test_memory_plan_splits_offloaded_layers(
    stories_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labdesk import memory

    monkeypatch.setattr(memory, "gpu_device", lambda: "cuda")  # this machine has no GPU
    info = read_gguf(stories_gguf)
    full = plan_llama(info, n_ctx_total=1000, n_batch=512, gpu_layers=999)
    assert (full.vram, full.ram) == (full.total, 0)
    part = plan_llama(info, n_ctx_total=1000, n_batch=512, gpu_layers=2)  # 2 of 5 layers
    assert part.vram == int(part.total * 0.4) and part.ram == part.total - part.vram
    check_fits(part, where="x", free_ram=part.ram, free_vram=part.vram)
    with pytest.raises(ModelError, match="of CUDA") as err:
        check_fits(part, where="x", free_ram=part.ram, free_vram=part.vram - 1)
    assert err.value.hint and "n_gpu_layers" in err.value.hint


def test_engine_is_shared_per_file_and_settings(stories_gguf: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.gguf"
    shutil.copy(stories_gguf, copy)
    assert load(stories_gguf) is load(stories_gguf)
    assert load(stories_gguf) is not load(stories_gguf, parallel=2)
    assert load(copy) is not load(stories_gguf)


def test_gpu_offload_is_chosen_by_the_build() -> None:
    import llama_cpp

    # 'auto' = every layer on a CUDA/Metal build, none on a CPU build (like this machine's).
    expected = 999 if llama_cpp.llama_supports_gpu_offload() else 0
    assert resolve_gpu_layers("auto") == expected
    assert resolve_gpu_layers(12) == 12


@pytest.mark.parametrize(
    "settings", [{"max_tokens": 0}, {"temperature": -1.0}, {"top_p": 0.0}, {"top_p": 1.5}]
)
def test_bad_request_settings(settings: dict[str, float]) -> None:
    with pytest.raises(ModelError, match="bad generation settings"):
        GenRequest("x", **({"max_tokens": 5} | settings))  # type: ignore[arg-type]
