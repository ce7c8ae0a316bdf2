"""Write a PEFT LoRA adapter as a GGUF adapter llama.cpp applies at load time
(``Llama(lora_path=...)``), so a tuned adapter can be tried on a base GGUF without merging.

Tensor names come from the same name map as the base model (``blk.N.attn_q.weight.lora_a``);
lora_b rows of q/k get the same rotary permutation as the base q/k weights.
"""

from __future__ import annotations

import json
import math
import re
from functools import partial
from pathlib import Path
from typing import Any

import gguf

from labdesk.errors import ModelError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.export import verify
from labdesk.export.architectures import ModelSpec, load_permuted, qk_heads, read_spec
from labdesk.export.checkpoint import Checkpoint
from labdesk.export.gguf_file import OutType, TensorJob, write_gguf

_PEFT_NAME = re.compile(
    r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$"
)


def convert_adapter(
    adapter_dir: Path,
    base_dir: Path,
    out: Path,
    *,
    base_gguf: Path,
    outtype: OutType = "f32",
    reporter: Reporter = null_reporter,
) -> Path:
    """Write the adapter in `adapter_dir` (trained on `base_dir`) as a GGUF adapter at `out`.

    The result is checked by applying it to `base_gguf` in llama.cpp and generating.
    """
    adapter_dir, base_dir = Path(adapter_dir), Path(base_dir)
    spec = read_spec(base_dir)
    alpha = lora_alpha(adapter_dir)
    jobs = plan_adapter_tensors(
        spec, Checkpoint.open(adapter_dir, stem="adapter_model"), outtype, adapter_dir
    )

    def metadata(writer: gguf.GGUFWriter) -> None:
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(adapter_dir.name)

    def check(path: Path) -> None:
        reporter(
            Event("export", kind="message", message=f"checking {out.name} on {base_gguf.name}")
        )
        llm = verify.load(base_gguf, lora_path=path)
        try:
            verify.greedy_check(llm, path)
        finally:
            llm.close()

    reporter(Event("export", kind="start", message=f"adapter {adapter_dir.name} → {out.name}"))
    write_gguf(out, spec.arch_name, metadata, jobs, check=check, reporter=reporter)
    reporter(Event("export", kind="done", message=f"wrote {out}"))
    return out


def lora_alpha(adapter_dir: Path) -> float:
    """The alpha llama.cpp should use: it scales by alpha / r, as plain LoRA does."""
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        raise ModelError(
            "no adapter_config.json: not a PEFT adapter folder", where=str(adapter_dir)
        )
    config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA":
        raise ModelError(f"adapter type {config.get('peft_type')!r} is not LoRA", where=str(path))
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ModelError(
            "per-module rank/alpha patterns cannot be expressed in a GGUF adapter",
            where=str(path),
            hint="merge the adapter into the model and export the merged model instead",
        )
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    # rsLoRA scales by alpha / sqrt(r); express that as an alpha for llama.cpp's alpha / r.
    return alpha * math.sqrt(rank) if config.get("use_rslora") else alpha


def plan_adapter_tensors(
    spec: ModelSpec, checkpoint: Checkpoint, outtype: OutType, adapter_dir: Path
) -> list[TensorJob]:
    tensor_map = spec.tensor_map()
    jobs = []
    for name in sorted(checkpoint.names()):
        match = _PEFT_NAME.match(name)
        base_name = match and tensor_map.get_name(
            f"{match['module']}.weight", try_suffixes=(".weight",)
        )
        if not match or not base_name:
            raise ModelError(
                f"adapter tensor {name!r} is not a LoRA A/B matrix of a known layer",
                where=str(adapter_dir),
                hint="only LoRA on linear layers (no modules_to_save, no embedding LoRA) can be exported",
            )
        heads = qk_heads(spec, match["module"] + ".") if match["ab"] == "B" else None
        jobs.append(
            TensorJob(
                f"{base_name}.lora_{match['ab'].lower()}",
                name,
                checkpoint.shape(name),
                outtype,
                partial(load_permuted, checkpoint, name, heads),
            )
        )
    if not jobs:
        raise ModelError("the adapter holds no LoRA tensors", where=str(adapter_dir))
    return jobs
