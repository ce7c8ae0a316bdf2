"""Keep the libraries' own output off the terminal unless `--verbose` asks for it.

transformers, bitsandbytes, tokenizers and huggingface-hub print warnings, log lines and tqdm
bars meant for their developers ("Failed to load CPU gemm_4bit_forward ... pip install kernels",
FutureWarnings, "Loading weights" bars). labdesk reports its own progress through events; errors
still come through as errors. Environment variables are set before those libraries are imported
(every command imports them lazily), so their defaults pick them up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator

QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore",  # worker processes too
}


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence them for the block (a command), then put everything back."""
    saved = {name: os.environ.get(name) for name in QUIET_ENV}
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)  # libraries' warnings and below; their errors still show
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
