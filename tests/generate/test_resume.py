"""A generation killed with SIGKILL mid-leaf resumes to exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from labdesk.generate import run_generation
from labdesk.runs import RunPaths
from labdesk.taxonomy import load_taxonomy
from labdesk.workspace import Workspace
from tests.generate.helpers import copy_taxonomy, write_recipe

LEAF = "compositional_skills/writing/freeform/email_tone"
SLUG = LEAF.replace("/", "__")

CHILD = """
import sys
from pathlib import Path
from labdesk.generate import run_generation
from labdesk.recipes import load_recipe
from labdesk.taxonomy import load_taxonomy
from labdesk.workspace import Workspace
home, recipe, taxonomy, run, leaf, *overrides = sys.argv[1:]
run_generation(load_taxonomy(Path(taxonomy)), load_recipe(recipe, overrides), Path(run),
               ws=Workspace.open(Path(home)), leaves=[leaf])
"""


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _samples(run: RunPaths) -> tuple[list[str], list[str]]:
    def rows(path: Path) -> list[str]:
        return [
            json.dumps(json.loads(line), sort_keys=True)
            for line in path.read_text(encoding="utf-8").splitlines()
        ]

    return rows(run.accepted(SLUG)), rows(run.rejected(SLUG))


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path: Path, teacher_gguf: Path) -> None:
    ws = Workspace.open(tmp_path / "home")
    # One sequence at a time, no prompt-prefix reuse: llama.cpp's floating-point results depend
    # slightly on which sequences share a batch and on KV computed by earlier calls, so only
    # then is "the same requests give the same replies" exact, and this test is about our
    # resume logic, not about the engine's batch invariance.
    overrides = [
        "generate.samples_per_leaf=3",
        "engine.parallel=1",
        "engine.reuse_prefix=false",
    ]
    recipe = write_recipe(tmp_path, teacher_gguf, *overrides)
    taxonomy = copy_taxonomy(tmp_path / "taxonomy")
    assert recipe.source is not None

    # The reference: one uninterrupted run.
    reference = RunPaths(tmp_path / "reference")
    run_generation(load_taxonomy(taxonomy), recipe, reference.root, ws=ws, leaves=[LEAF])

    # The same run in a child process, killed with SIGKILL once a few replies are cached.
    killed = RunPaths(tmp_path / "killed")
    cache = killed.generated / ".cache" / f"{SLUG}.jsonl"
    args = [str(ws.home), str(recipe.source), str(taxonomy), str(killed.root), LEAF, *overrides]
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args])
    try:
        deadline = time.monotonic() + 240
        while _lines(cache) < 4 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert child.poll() is None, "the child finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    manifest = json.loads(killed.leaf_manifest(SLUG).read_text(encoding="utf-8"))
    assert not manifest["complete"]
    replies_before = _lines(cache)

    report = run_generation(load_taxonomy(taxonomy), recipe, killed.root, ws=ws, leaves=[LEAF])
    assert report.leaves[0].status == "resumed"

    accepted, rejected = _samples(killed)
    expected_accepted, expected_rejected = _samples(reference)
    ids = [json.loads(r)["metadata"]["id"] for r in accepted + rejected]
    assert len(ids) == len(set(ids)), "a sample was written twice"
    assert sorted(accepted) == sorted(expected_accepted)
    assert sorted(rejected) == sorted(expected_rejected)
    assert accepted or rejected
    assert replies_before >= 4  # the resumed run had cached replies to reuse
