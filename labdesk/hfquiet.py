"""Keep transformers' own progress bars off the terminal: core code reports through events only."""

from __future__ import annotations


def quiet_transformers() -> None:
    """Turn off transformers' tqdm bars ("Loading weights", "Writing model shards")."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
