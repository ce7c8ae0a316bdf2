"""Stream tensors into a GGUF file atomically: metadata and tensor index first, then one tensor
at a time, so memory holds one tensor, never the whole model.

The file is written under a temporary name beside the target, checked, and only then renamed;
a failure (full disk, bad tensor, failed check) deletes the temporary file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gguf
import numpy as np

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.export.checkpoint import f32_to_bf16

OutType = Literal["f32", "f16", "bf16"]

QTYPES: dict[str, gguf.GGMLQuantizationType] = {
    "f32": gguf.GGMLQuantizationType.F32,
    "f16": gguf.GGMLQuantizationType.F16,
    "bf16": gguf.GGMLQuantizationType.BF16,
}
FILE_TYPES: dict[str, gguf.LlamaFileType] = {
    "f32": gguf.LlamaFileType.ALL_F32,
    "f16": gguf.LlamaFileType.MOSTLY_F16,
    "bf16": gguf.LlamaFileType.MOSTLY_BF16,
}
_NUMPY: dict[str, np.dtype[Any]] = {
    "f32": np.dtype(np.float32),
    "f16": np.dtype(np.float16),
    "bf16": np.dtype(np.uint16),
}


@dataclass(frozen=True)
class TensorJob:
    """One tensor to write: its GGUF name and shape, its output type, and how to produce it."""

    name: str
    source: str
    """Where it comes from (the HF tensor name), for error messages."""
    shape: tuple[int, ...]
    outtype: OutType
    load: Callable[[], np.ndarray]
    """Returns the float32 values, already transformed (permuted, scaled) for llama.cpp."""

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * _NUMPY[self.outtype].itemsize


def cast(values: np.ndarray, outtype: OutType) -> np.ndarray:
    if outtype == "bf16":
        return f32_to_bf16(values)
    return np.ascontiguousarray(values, dtype=_NUMPY[outtype])


def write_gguf(
    out: Path,
    arch: str,
    metadata: Callable[[gguf.GGUFWriter], None],
    jobs: Sequence[TensorJob],
    *,
    check: Callable[[Path], None],
    reporter: Reporter = null_reporter,
) -> Path:
    """Write `jobs` with `metadata` to `out` (via a temporary file), run `check` on it, rename."""
    with partial_file(out) as tmp:
        _write(tmp, out.name, arch, metadata, jobs, reporter)
        check(tmp)
    return out


@contextlib.contextmanager
def partial_file(out: Path) -> Iterator[Path]:
    """A temporary path beside `out`, renamed to `out` if the block succeeds, else deleted."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        yield tmp
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write(
    tmp: Path,
    label: str,
    arch: str,
    metadata: Callable[[gguf.GGUFWriter], None],
    jobs: Sequence[TensorJob],
    reporter: Reporter,
) -> None:
    writer = gguf.GGUFWriter(tmp, arch)
    metadata(writer)
    for job in jobs:
        writer.add_tensor_info(
            job.name,
            job.shape,
            _NUMPY[job.outtype],
            job.nbytes,
            raw_dtype=QTYPES[job.outtype],
        )
    current = "(header)"
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for i, job in enumerate(jobs):
            current = job.name
            data = job.load()
            if data.shape != job.shape:
                raise ModelError(
                    f"tensor {job.source!r} has shape {data.shape}, expected {job.shape}",
                    where=str(tmp.name),
                )
            if data.dtype.kind == "f" and not np.isfinite(data).all():
                raise ModelError(
                    f"tensor {job.source!r} ({job.name}) holds NaN or infinite values",
                    hint="the checkpoint is corrupt or the training diverged",
                )
            writer.write_tensor_data(cast(data, job.outtype))
            reporter(Event("export", step=label, message=job.name, done=i + 1, total=len(jobs)))
        assert writer.fout is not None
        for fh in writer.fout:
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:  # numpy's tofile reports a short write without an errno
        raise ModelError(
            f"could not write tensor {current}: {exc.strerror or exc}",
            where=label,
            hint="make sure the output folder is writable and has room for the file "
            "(about the model's size), then run again",
        ) from exc
    finally:
        with contextlib.suppress(OSError):  # already failing: the OSError above says why
            writer.close()
