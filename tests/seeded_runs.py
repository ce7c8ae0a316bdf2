"""A run's generated data made from its leaves' own seeds: what mixing needs, without a teacher."""

from __future__ import annotations

from collections.abc import Iterable

from labdesk.fileio import write_jsonl
from labdesk.runs import RunPaths
from labdesk.taxonomy.leaves import Leaf


def write_seed_samples(run: RunPaths, leaves: Iterable[Leaf]) -> None:
    """Each leaf's accepted samples: the first question and answer of each of its seeds."""
    for leaf in leaves:
        rows = [
            {
                "messages": [
                    {"role": "user", "content": seed.qa[0].question},
                    {"role": "assistant", "content": seed.qa[0].answer},
                ],
                "metadata": {"leaf": leaf.path, "kind": leaf.kind, "id": f"{leaf.slug}-{i}"},
            }
            for i, seed in enumerate(leaf.seeds)
        ]
        write_jsonl(run.accepted(leaf.slug), rows)
