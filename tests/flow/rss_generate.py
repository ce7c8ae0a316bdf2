"""Run `labdesk run` up to the start of mix in this process and print its resident memory (JSON)
at the start of generate, the most seen while generating, and at the start of mix.

A separate process (started by test_release.py), so nothing else the test session loaded blurs
the numbers. Arguments: the taxonomy folder, then recipe overrides (``key=value``); LABDESK_HOME
names the workspace. With ``KEEP_ENGINES=1`` the engines are not released (the control case).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import psutil

from labdesk.errors import Cancelled
from labdesk.events import Event
from labdesk.flow import run_flow
from labdesk.models import engine
from labdesk.recipes import load_recipe
from labdesk.workspace import Workspace

process = psutil.Process()
rss: dict[str, int] = {"peak": 0}


def reporter(event: Event) -> None:
    now = process.memory_info().rss
    if event.stage == "run" and event.kind == "start" and event.step in ("generate", "mix"):
        rss[event.step] = now
        if event.step == "mix":
            rss["engines_cached"] = len(engine._CACHE)
            # The measurement is over. Stop before mix runs: whether the teacher's few drafts
            # passed the judge is not what this script measures.
            raise Cancelled("measured")
    elif event.stage == "generate" and "generate" in rss:
        rss["peak"] = max(rss["peak"], now)


if os.environ.get("KEEP_ENGINES") == "1":
    engine.release_all = lambda: None
recipe = load_recipe("tiny", sys.argv[2:])
with contextlib.suppress(Cancelled):
    run_flow(recipe, Workspace.open(), taxonomy_root=Path(sys.argv[1]), reporter=reporter)
print(json.dumps(rss))
