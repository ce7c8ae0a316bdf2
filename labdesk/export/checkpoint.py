"""Read a Hugging Face checkpoint one tensor at a time, without loading the whole model.

Safetensors files are read by parsing their JSON header and then reading each tensor's bytes on
demand (plain reads, not a memory map, so the pages of a tensor we are done with do not stay in
our resident set). bf16 is widened to float32 with numpy alone. Legacy ``pytorch_model*.bin``
files go through torch's memory-mapped, weights-only loader.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from labdesk.errors import ModelError

_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits, widened in `bf16_to_f32`
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


def bf16_to_f32(bits: np.ndarray) -> np.ndarray:
    """Widen raw bfloat16 bits (uint16) to float32: bf16 is the top half of an f32."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(values: np.ndarray) -> np.ndarray:
    """Round float32 to bfloat16 bits (uint16), nearest-even, keeping NaN a NaN."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    nan = np.isnan(values)
    if nan.any():
        rounded[nan] = (bits[nan] >> 16) | 0x40
    return rounded.astype(np.uint16)


@dataclass(frozen=True)
class _Entry:
    file: Path
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


class Checkpoint:
    """The tensors of one model folder (or adapter folder), read lazily by name."""

    def __init__(self, entries: dict[str, _Entry], torch_files: dict[str, Path]) -> None:
        self._entries = entries
        self._torch_files = torch_files
        self._torch_cache: dict[Path, dict[str, Any]] = {}

    @classmethod
    def open(cls, folder: Path, stem: str = "model") -> Checkpoint:
        """Open ``<stem>.safetensors`` (single or sharded) or ``pytorch_<stem>*.bin`` in `folder`."""
        files = sorted(folder.glob(f"{stem}*.safetensors"))
        if files:
            entries: dict[str, _Entry] = {}
            for file in files:
                entries.update(_read_header(file))
            return cls(entries, {})
        bins = sorted(folder.glob(f"pytorch_{stem}*.bin")) or sorted(folder.glob(f"{stem}*.bin"))
        if bins:
            return cls({}, {name: file for file in bins for name in _torch_names(file)})
        raise ModelError(
            f"no weights found (looked for {stem}*.safetensors and pytorch_{stem}*.bin)",
            where=str(folder),
            hint="point at a Hugging Face model folder saved with save_pretrained()",
        )

    def names(self) -> list[str]:
        return list(self._entries) if self._entries else list(self._torch_files)

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._torch_files

    def shape(self, name: str) -> tuple[int, ...]:
        if self._entries:
            return self._entries[name].shape
        return tuple(self._torch_tensor(name).shape)

    def read(self, name: str) -> np.ndarray:
        """The tensor as a float32 (floats) or native (integers) numpy array."""
        if not self._entries:
            tensor = self._torch_tensor(name)
            return tensor.float().numpy() if tensor.is_floating_point() else tensor.numpy()
        entry = self._entries[name]
        dtype = _DTYPES[entry.dtype]
        count = (entry.end - entry.start) // dtype.itemsize
        with entry.file.open("rb") as fh:
            fh.seek(entry.start)
            data = np.fromfile(fh, dtype=dtype, count=count)
        if data.size != count:
            raise ModelError(
                f"tensor {name!r} is cut short ({data.size} of {count} values)",
                where=str(entry.file),
                hint="the file is truncated; download or save the model again",
            )
        data = data.reshape(entry.shape)
        if entry.dtype == "BF16":
            return bf16_to_f32(data)
        if data.dtype.kind == "f":
            return data.astype(np.float32, copy=False)
        return data

    def items(self) -> Iterator[tuple[str, np.ndarray]]:
        for name in self.names():
            yield name, self.read(name)

    def _torch_tensor(self, name: str) -> Any:
        import torch

        file = self._torch_files[name]
        if file not in self._torch_cache:
            self._torch_cache = {
                file: torch.load(file, map_location="cpu", mmap=True, weights_only=True)
            }
        return self._torch_cache[file][name]


def _read_header(file: Path) -> dict[str, _Entry]:
    size = file.stat().st_size
    with file.open("rb") as fh:
        raw_len = fh.read(8)
        if len(raw_len) < 8:
            raise ModelError("not a safetensors file (shorter than its header)", where=str(file))
        (header_len,) = struct.unpack("<Q", raw_len)
        if header_len > min(size - 8, 100_000_000):
            raise ModelError(
                "safetensors header length is impossible (file truncated or not safetensors)",
                where=str(file),
            )
        try:
            header = json.loads(fh.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(
                f"safetensors header is not valid JSON: {exc}", where=str(file)
            ) from exc
    base = 8 + header_len
    entries: dict[str, _Entry] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info.get("dtype")
        if dtype not in _DTYPES:
            raise ModelError(f"tensor {name!r} has unsupported dtype {dtype!r}", where=str(file))
        start, end = (base + int(o) for o in info["data_offsets"])
        shape = tuple(int(d) for d in info["shape"])
        if end - start != int(np.prod(shape, dtype=np.int64)) * _DTYPES[dtype].itemsize:
            raise ModelError(
                f"tensor {name!r}: byte range does not match its shape {shape}", where=str(file)
            )
        if end > size:
            raise ModelError(
                f"tensor {name!r} ends at byte {end} but the file has only {size} bytes",
                where=str(file),
                hint="the file is truncated; download or save the model again",
            )
        entries[name] = _Entry(file, dtype, shape, start, end)
    return entries


def _torch_names(file: Path) -> list[str]:
    import torch

    try:
        state = torch.load(file, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt pickle/zip
        raise ModelError(f"cannot read torch checkpoint: {exc}", where=str(file)) from exc
    return list(state)
