"""Which leaves a generation works on, and which of their seeds the teacher may see."""

from __future__ import annotations

from collections.abc import Sequence

from labdesk.errors import ConfigError
from labdesk.events import Event, Reporter, null_reporter
from labdesk.generate.candidates import derive_seed
from labdesk.taxonomy.leaves import Leaf, Seed


def select_leaves(all_leaves: Sequence[Leaf], wanted: Sequence[str] | None) -> list[Leaf]:
    """Leaf paths (or folders holding leaves) inside the taxonomy; default: all."""
    if not wanted:
        return list(all_leaves)
    chosen: list[Leaf] = []
    for item in wanted:
        matched = [leaf for leaf in all_leaves if is_under(leaf, item)]
        if not matched:
            raise ConfigError(
                f"no leaf '{item}' in the taxonomy",
                hint="give a leaf's folder relative to the taxonomy root; "
                f"e.g. {', '.join(leaf.path for leaf in all_leaves[:3])}",
            )
        chosen += [leaf for leaf in matched if leaf not in chosen]
    return chosen


def is_under(leaf: Leaf, item: str) -> bool:
    """Whether `item` (a leaf path, a folder holding leaves, or a qna.yaml file) names `leaf`."""
    prefix = item.strip("/")
    return leaf.path == prefix or leaf.path.startswith(prefix + "/") or str(leaf.file) == item


def is_skipped(leaf: Leaf, skip: Sequence[str]) -> bool:
    """Whether the recipe's `skip_leaves` (leaf paths or folders) leaves `leaf` out."""
    return any(is_under(leaf, item) for item in skip)


def without_skipped(
    leaves: Sequence[Leaf],
    skip: Sequence[str],
    *,
    reporter: Reporter = null_reporter,
    stage: str = "generate",
) -> list[Leaf]:
    """`leaves` less those the recipe's `skip_leaves` names, each one reported.

    Every command that generates or mixes applies it, so the run's data holds nothing of a
    skipped leaf whichever way it was made (generation prunes what earlier runs made of it).
    """
    kept: list[Leaf] = []
    skipped: list[Leaf] = []
    for leaf in leaves:
        (skipped if is_skipped(leaf, skip) else kept).append(leaf)
    if skipped and not kept:
        raise ConfigError(
            "the recipe's skip_leaves leaves out every leaf there was to work on: "
            + ", ".join(leaf.path for leaf in skipped),
            hint="remove some of them from skip_leaves (`--set skip_leaves=[]` keeps all)",
        )
    if skipped:
        paths = ", ".join(leaf.path for leaf in skipped)
        reporter(Event(stage, "message", f"left out by the recipe's skip_leaves: {paths}"))
    return kept


def split_seeds(leaf: Leaf, held_out: int, seed: int) -> tuple[list[Seed], list[Seed]]:
    """(seeds the teacher sees, seeds kept back for evaluation), a stable choice per leaf.

    At least one seed always stays with the teacher: a leaf with fewer seeds holds back fewer.
    """
    order = sorted(
        range(len(leaf.seeds)), key=lambda i: derive_seed(seed, leaf.content_hash, "heldout", i)
    )
    keep_back = set(order[: max(0, min(held_out, len(leaf.seeds) - 1))])
    shown = [s for i, s in enumerate(leaf.seeds) if i not in keep_back]
    return shown, [s for i, s in enumerate(leaf.seeds) if i in keep_back]
