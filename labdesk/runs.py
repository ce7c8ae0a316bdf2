"""Where a run's artifacts live, and the record shapes stages hand each other.

One run folder (``<workspace>/runs/<name>/``) holds every stage's output; each stage reads the
previous stage's files and writes its own, so any stage can be re-run or resumed alone.

Generated sample (one JSON object per line, in ``generated/<slug>.jsonl``)::

    {"messages": [{"role": "system", "content": ...},
                  {"role": "user", "content": ...},
                  {"role": "assistant", "content": ...}],
     "metadata": {"leaf": "knowledge/.../leaf", "kind": "knowledge|freeform_skill|grounded_skill",
                  "type": "qa|summary|key_facts|...",       # what the sample teaches
                  "chunk": {"document": ..., "index": ..., "text": ...} | null,
                  "context": str | null,                     # grounded skills: the context
                  "scores": {...}, "id": "<stable sample id>"}}

Rejected samples (``generated/<slug>.rejected.jsonl``) have the same shape plus
``metadata.step`` (which step dropped it) and ``metadata.reason`` (the judge's or filter's why).
The system message written at generation time is a placeholder: the mixer puts the recipe's
system prompt into every sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PHASES = ("knowledge_1", "knowledge_2", "skills")


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def recipe(self) -> Path:
        """The recipe (overrides applied) the run was last run with, as JSON."""
        return self.root / "recipe.json"

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
