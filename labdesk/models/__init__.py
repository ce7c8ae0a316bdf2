"""Local model runtime: model store, llama.cpp engine with batched, constrained decoding and
batched log-likelihood scoring.

Importing this package is cheap: llama.cpp, gguf and huggingface-hub load on first use.
"""

from labdesk.models.engine import Engine
from labdesk.models.store import pull_model, resolve_model
from labdesk.models.types import GenRequest, GenResult, ScoreRequest, ScoreResult

__all__ = [
    "Engine",
    "GenRequest",
    "GenResult",
    "ScoreRequest",
    "ScoreResult",
    "pull_model",
    "resolve_model",
]
