"""`labdesk export gguf MODEL_DIR`: a Hugging Face model (or a LoRA adapter) to GGUF.

`labdesk export run RUN` (merge a run's adapter, then export as a chat model) lives in
`labdesk.cli.export_run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from labdesk.cli.export_run import add_run_verb


def register(sub: Any) -> None:
    parser = sub.add_parser("export", help="write models as GGUF files llama.cpp runs")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    gguf = verbs.add_parser(
        "gguf",
        help="convert a Hugging Face model folder (and optionally a LoRA adapter) to GGUF",
        description="Convert MODEL_DIR to GGUF, check it with llama.cpp, optionally quantize. "
        "With --adapter, also write the adapter as a GGUF adapter for `Llama(lora_path=...)`.",
    )
    gguf.add_argument("model_dir", type=Path, metavar="MODEL_DIR")
    gguf.add_argument("--outtype", choices=["f32", "f16", "bf16"], default="f16")
    gguf.add_argument("--quantize", choices=["none", "q8_0", "q4_k_m"], default="none")
    gguf.add_argument("--adapter", type=Path, metavar="DIR", help="a PEFT LoRA adapter folder")
    gguf.add_argument(
        "-o", "--out", type=Path, help="output file (default: MODEL_DIR/../<name>-<type>.gguf)"
    )
    gguf.set_defaults(handler=_gguf)
    add_run_verb(verbs)


def _gguf(args: argparse.Namespace) -> int:
    from labdesk.cli.render import ProgressRenderer, console
    from labdesk.export.gguf import convert_model
    from labdesk.export.gguf_adapter import convert_adapter
    from labdesk.export.quantize import quantize

    model_dir: Path = args.model_dir.resolve()
    out: Path = args.out or model_dir.parent / f"{model_dir.name}-{args.outtype}.gguf"
    written = []
    with ProgressRenderer() as reporter:
        written.append(convert_model(model_dir, out, outtype=args.outtype, reporter=reporter))
        if args.quantize != "none":
            final = out.with_name(f"{out.stem}-{args.quantize}.gguf")
            written.append(quantize(out, final, args.quantize, reporter=reporter))
        if args.adapter:
            adapter_out = out.with_name(f"{args.adapter.resolve().name}-lora-{args.outtype}.gguf")
            written.append(
                convert_adapter(
                    args.adapter,
                    model_dir,
                    adapter_out,
                    base_gguf=out,
                    outtype=args.outtype,
                    reporter=reporter,
                )
            )
    for path in written:
        console.print(f"wrote [bold]{path}[/] ({path.stat().st_size / 2**20:.1f} MiB)")
    return 0
