"""What the export tests share: running `labdesk export gguf` as a user does, and comparing a
GGUF with transformers on the same weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from labdesk.export import verify


def export_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labdesk", "export", "gguf", *args], capture_output=True, text=True
    )


PROMPTS = [
    "Once upon a time",
    "The little dog saw a big",
    "Lily and Tom went to the park.\nThey",
    "Tom's BIG red ball cost 12345 coins",  # case, a contraction, a digit run
]


def assert_matches_transformers(
    hf_dir: Path, gguf: Path, n_new: int = 64, tolerance: float = 1e-3
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    llm = verify.load(gguf, n_ctx=256)
    try:
        for prompt in PROMPTS:
            ids = tokenizer(prompt).input_ids
            assert llm.tokenize(prompt.encode(), add_bos=True, special=True) == ids
            with torch.no_grad():
                hf_tokens = model.generate(
                    torch.tensor([ids]), max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False
                )[0].tolist()
                hf_logits = model(torch.tensor([hf_tokens])).logits[0].numpy()
            llm.reset()
            llm.eval(ids)
            ours = []
            for _ in range(n_new):
                token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
                ours.append(token)
                llm.eval([token])
            assert ours == hf_tokens[len(ids) :], prompt
            # the text each library writes for the prompt and its greedy continuation
            hf_text = tokenizer.decode(hf_tokens, skip_special_tokens=True)
            assert llm.detokenize(hf_tokens).decode("utf-8", "replace") == hf_text, prompt
            llm.reset()
            llm.eval(hf_tokens)
            diff = np.abs(np.asarray(llm.scores[: len(hf_tokens)]) - hf_logits).max()
            assert diff < tolerance, f"{prompt!r}: max logit difference {diff}"
    finally:
        llm.close()
