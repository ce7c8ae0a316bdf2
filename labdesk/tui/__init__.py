"""The terminal app: one screen per step of the LAB flow, driving the same core calls as the CLI.

Only `run_app` lives here so that importing the package costs nothing until the app is opened.
"""

from __future__ import annotations

from pathlib import Path


def run_app(home: Path | None = None) -> int:
    """Open the app on the workspace's taxonomy; returns the process exit code."""
    from labdesk.tui.app import LabdeskApp

    LabdeskApp(home=home).run()
    return 0
