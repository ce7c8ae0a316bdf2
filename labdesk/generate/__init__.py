"""Synthetic data generation: per-leaf LAB pipelines with a local teacher and judge."""

from __future__ import annotations

from labdesk.generate.models import Models, TextModel, load_models
from labdesk.generate.report import GenerationReport, LeafReport
from labdesk.generate.runner import generate_leaves, run_generation
from labdesk.generate.selection import select_leaves, split_seeds

__all__ = [
    "GenerationReport",
    "LeafReport",
    "Models",
    "TextModel",
    "generate_leaves",
    "load_models",
    "run_generation",
    "select_leaves",
    "split_seeds",
]
