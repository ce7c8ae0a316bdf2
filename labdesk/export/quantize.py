"""Quantize a GGUF with llama.cpp's own quantizer (llama-cpp-python's low-level API)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Literal

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.export import verify
from labdesk.export.gguf_file import partial_file

QuantMethod = Literal["q8_0", "q4_k_m"]


def quantize(
    src: Path, out: Path, method: QuantMethod, *, reporter: Reporter = null_reporter
) -> Path:
    """Write `src` quantized with `method` to `out`, then load it and generate to check it."""
    import llama_cpp

    ftypes = {
        "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
        "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    }
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftypes[method]
    params.nthread = os.cpu_count() or 1
    reporter(
        Event("export", kind="start", message=f"quantizing {src.name} → {out.name} ({method})")
    )
    with partial_file(out) as tmp:
        errors: list[str] = []
        with verify.llama_errors(errors):  # also keeps llama.cpp's per-tensor log off the terminal
            status = llama_cpp.llama_model_quantize(
                str(src).encode(), str(tmp).encode(), ctypes.byref(params)
            )
        if status != 0:
            raise ModelError(
                f"llama.cpp could not quantize to {method}: {' '.join(errors) or status}",
                where=str(src),
                hint="check the disk has room for the output and the source GGUF loads",
            )
        llm = verify.load(tmp)
        try:
            if llm.metadata.get("general.file_type") != str(params.ftype):
                raise ModelError(
                    f"general.file_type is {llm.metadata.get('general.file_type')}, expected {params.ftype}",
                    where=str(tmp),
                )
            verify.greedy_check(llm, tmp)
        finally:
            llm.close()
    reporter(Event("export", kind="done", message=f"wrote {out}"))
    return out
