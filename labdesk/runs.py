"""Where a run's artifacts live, and the record shapes stages hand each other.

One run folder (``<workspace>/runs/<name>/``) holds every stage's output; each stage reads the
previous stage's files and writes its own, so any stage can be re-run or resumed alone.

Generated sample (one JSON object per line, in ``generated/<slug>.jsonl``)::

    {"messages": [{"role": "system", "content": ...},
                  {"role": "user", "content": ...},
                  {"role": "assistant", "content": ...}],
     "metadata": {"leaf": "knowledge/.../leaf", "kind": "knowledge|freeform_skill|grounded_skill",
                  "type": "qa|summary|...",                # what the sample teaches
                  "chunk": {"document": ..., "index": ..., "text": ...} | null,
                  "context": str | null,                     # grounded skills: the context
                  "scores": {...}, "id": "<stable sample id>"}}

Rejected samples (``generated/<slug>.rejected.jsonl``) have the same shape plus
``metadata.step`` (which step dropped it) and ``metadata.reason`` (the judge's or filter's why).
The system message written at generation time is a placeholder: the mixer puts the recipe's
system prompt into every sample.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from labdesk.errors import ConfigError

PHASES = ("knowledge_1", "knowledge_2", "skills")


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def recipe(self) -> Path:
        """The recipe (overrides applied) the run was last run with, as JSON."""
        return self.root / "recipe.json"

    @property
    def lock(self) -> Path:
        """Held by the one process working on the run (`labdesk.runlock`)."""
        return self.root / "lock"

    @property
    def state(self) -> Path:
        """`labdesk run`'s stage ledger: per stage, the key it was made from and its status."""
        return self.root / "state.json"

    # generate
    @property
    def generated(self) -> Path:
        return self.root / "generated"

    def accepted(self, slug: str) -> Path:
        return self.generated / f"{slug}.jsonl"

    def rejected(self, slug: str) -> Path:
        return self.generated / f"{slug}.rejected.jsonl"

    def heldout(self, slug: str) -> Path:
        """The leaf's seeds kept back from generation, for evaluation (JSON list of seeds)."""
        return self.generated / f"{slug}.heldout.json"

    def leaf_manifest(self, slug: str) -> Path:
        """What a leaf was generated from (content hash, recipe section, models) and if complete."""
        return self.generated / f"{slug}.manifest.json"

    @property
    def generate_report(self) -> Path:
        return self.generated / "report.json"

    # mix
    @property
    def mixed(self) -> Path:
        return self.root / "mixed"

    def phase_data(self, phase: str) -> Path:
        return self.mixed / f"{phase}.jsonl"

    @property
    def composition(self) -> Path:
        return self.mixed / "composition.json"

    # train
    @property
    def train(self) -> Path:
        return self.root / "train"

    def phase_dir(self, phase: str) -> Path:
        """Checkpoints, loss history (``loss.jsonl``) and the phase's final adapter."""
        return self.train / phase

    @property
    def final_adapter(self) -> Path:
        """The last phase's adapter, in PEFT layout whatever the backend."""
        return self.train / "final"

    # export / evaluate
    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluate"


def leaves_without_data(run: RunPaths, leaves: Iterable[str] | None = None) -> list[str]:
    """The leaves (taxonomy paths) without one accepted sample in `run`: of `leaves`, or by
    default of every leaf generation started on (a leaf never started leaves no file)."""
    from labdesk.taxonomy.leaves import leaf_slug

    if leaves is None:
        started = run.generated.glob("*.manifest.json")
        leaves = [p.name.removesuffix(".manifest.json").replace("__", "/") for p in started]
    return sorted(leaf for leaf in leaves if not _has_a_line(run.accepted(leaf_slug(leaf))))


def require_data(run: RunPaths, leaves: Iterable[str] | None = None) -> None:
    """Refuse (a `ConfigError` naming them) when leaves have no accepted data: training would
    quietly teach nothing of them."""
    missing = leaves_without_data(run, leaves)
    if not missing:
        return
    some = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    unfinished = [leaf for leaf in missing if not generation_finished(run, leaf)]
    if unfinished:
        hint = f"`labdesk generate {run.name}` generates them, going on where it stopped"
    else:
        hint = (
            "the judge rejected every sample of them: "
            f"`labdesk generate {run.name} --leaf {missing[0]} --preview 3` shows its reasons "
            "(clearer, more varied seed examples help)"
        )
    raise ConfigError(
        f"{len(missing)} leaf(s) have no accepted samples: {some}",
        where=str(run.generated),
        hint=hint + "; or move those leaves out of the taxonomy",
    )


def generation_finished(run: RunPaths, leaf: str) -> bool:
    """Whether generation went through every round of `leaf` (a taxonomy path) in `run`."""
    from labdesk.taxonomy.leaves import leaf_slug

    try:
        manifest = json.loads(run.leaf_manifest(leaf_slug(leaf)).read_text(encoding="utf-8"))
        return bool(manifest.get("complete"))
    except (OSError, ValueError, AttributeError):
        return False


def _has_a_line(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as handle:
            return any(line.strip() for line in handle)
    except FileNotFoundError:
        return False
