"""Convert a Hugging Face Llama-family model folder to a GGUF file llama.cpp runs.

Tensors stream from the checkpoint to the file one at a time (see `gguf_file`), q/k rows are
permuted into llama.cpp's rotary layout, and the finished file is loaded back and checked
before it gets its final name.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gguf

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.export import verify
from labdesk.export.architectures import (
    ModelSpec,
    add_metadata,
    llama3_rope_factors,
    load_permuted,
    qk_heads,
    read_spec,
)
from labdesk.export.checkpoint import Checkpoint
from labdesk.export.gguf_file import FILE_TYPES, OutType, TensorJob, write_gguf
from labdesk.export.gguf_tokenizer import TokenizerInfo, add_tokenizer

# Tensors every block must have; a missing one is named before anything is written.
_BLOCK_TENSORS = ("attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")  # fmt: skip
_SKIPPED_SUFFIXES = (".rotary_emb.inv_freq",)


def convert_model(
    model_dir: Path,
    out: Path,
    *,
    outtype: OutType = "f16",
    reporter: Reporter = null_reporter,
    check: bool = True,
) -> Path:
    """Write `model_dir` as a GGUF at `out` and verify it with llama.cpp; returns `out`."""
    model_dir = Path(model_dir)
    spec = read_spec(model_dir)
    checkpoint = Checkpoint.open(model_dir)
    jobs = plan_tensors(spec, checkpoint, outtype, model_dir)
    tokenizer: list[TokenizerInfo] = []

    def metadata(writer: gguf.GGUFWriter) -> None:
        add_metadata(writer, spec, name=model_dir.name)
        writer.add_file_type(FILE_TYPES[outtype])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        tokenizer.append(add_tokenizer(writer, model_dir, spec.vocab_size))

    def check_file(path: Path) -> None:
        if check:
            reporter(Event("export", kind="message", message=f"checking {out.name} with llama.cpp"))
            verify.check_model(path, model_dir, spec, tokenizer[0])

    reporter(Event("export", kind="start", message=f"{model_dir.name} → {out.name} ({outtype})"))
    write_gguf(out, spec.arch_name, metadata, jobs, check=check_file, reporter=reporter)
    reporter(Event("export", kind="done", message=f"wrote {out}"))
    return out


def plan_tensors(
    spec: ModelSpec, checkpoint: Checkpoint, outtype: OutType, model_dir: Path
) -> list[TensorJob]:
    """Map every checkpoint tensor to its GGUF name, output type and transform."""
    tensor_map = spec.tensor_map()
    jobs: list[TensorJob] = []
    factors = llama3_rope_factors(spec)
    if factors is not None:
        jobs.append(
            TensorJob("rope_freqs.weight", "rope_scaling", factors.shape, "f32", lambda: factors)
        )
    for name in checkpoint.names():
        if name.endswith(_SKIPPED_SUFFIXES):
            continue
        gguf_name = tensor_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ModelError(
                f"tensor {name!r} has no GGUF name for architecture {spec.arch_name}",
                where=str(model_dir),
                hint="this checkpoint has layers labdesk's converter does not know",
            )
        shape = checkpoint.shape(name)
        load = partial(load_permuted, checkpoint, name, qk_heads(spec, name))
        # Norms and biases stay f32, as llama.cpp's own converter keeps them.
        jobs.append(TensorJob(gguf_name, name, shape, outtype if len(shape) > 1 else "f32", load))
    _check_complete(spec, jobs, model_dir)
    return jobs


def _check_complete(spec: ModelSpec, jobs: list[TensorJob], model_dir: Path) -> None:
    by_name = {job.name: job for job in jobs}
    required = ["token_embd.weight", "output_norm.weight"] + [
        f"blk.{i}.{part}.weight" for i in range(spec.n_layer) for part in _BLOCK_TENSORS
    ]
    missing = [name for name in required if name not in by_name]
    if missing:
        raise ModelError(
            f"the checkpoint lacks {len(missing)} tensors, first {missing[0]}",
            where=str(model_dir),
            hint="the weights are incomplete (a missing shard?); save or download the model again",
        )
    rows = by_name["token_embd.weight"].shape[0]
    if rows != spec.vocab_size:
        raise ModelError(
            f"token embedding has {rows} rows but config.json says vocab_size={spec.vocab_size}",
            where=str(model_dir),
        )
