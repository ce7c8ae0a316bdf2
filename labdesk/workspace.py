"""The user's workspace: one folder holding models, runs, chats and their taxonomy."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labdesk.resources import data_dir

ENV_HOME = "LABDESK_HOME"


def default_home() -> Path:
    """`LABDESK_HOME` if set, else the platform's user data dir (read here, at the edge, only)."""
    if env := os.environ.get(ENV_HOME):
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("labdesk", appauthor=False))


@dataclass(frozen=True)
class Workspace:
    home: Path

    @classmethod
    def open(cls, home: Path | None = None) -> Workspace:
        ws = cls((home or default_home()).expanduser().resolve())
        for folder in (ws.models, ws.runs, ws.chats, ws.cache):
            folder.mkdir(parents=True, exist_ok=True)
        return ws

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def runs(self) -> Path:
        return self.home / "runs"

    @property
    def chats(self) -> Path:
        return self.home / "chats"

    @property
    def cache(self) -> Path:
        return self.home / "cache"

    @property
    def taxonomy(self) -> Path:
        return self.home / "taxonomy"

    def run_dir(self, name: str) -> Path:
        return self.runs / name

    def ensure_taxonomy(self) -> Path:
        """The user's taxonomy, seeded from the packaged sample on first use, under git."""
        if not self.taxonomy.exists():
            shutil.copytree(data_dir("taxonomy"), self.taxonomy)
        if not (self.taxonomy / ".git").exists():
            put_under_git(self.taxonomy)
        return self.taxonomy


SEED_BASE = "refs/remotes/origin/main"
"""Where the packaged sample the taxonomy was seeded from is committed: the base `labdesk
taxonomy diff` (like `ilab taxonomy diff`) compares against by default, so it lists the user's
own leaves from day one. Adding a real remote named `origin` and fetching replaces it."""


def put_under_git(folder: Path) -> bool:
    """Make `folder` a git repository whose first commit is the packaged sample taxonomy.

    What the user changed since (a taxonomy older than this feature) shows as changes against
    it. Does nothing (False) when git is not installed or `folder` already lies inside a work
    tree (a user who keeps the workspace in their own repository keeps it there).
    """

    def git(*args: str) -> bool:
        # a fixed identity: the user may have none configured, and this commit is not theirs
        config = ["-c", "user.name=labdesk", "-c", "user.email=labdesk@localhost"]
        config += ["-c", "commit.gpgsign=false"]
        command = ["git", "-C", str(folder), *config, *args]
        return subprocess.run(command, capture_output=True, check=False).returncode == 0

    try:
        if git("rev-parse", "--is-inside-work-tree"):
            return False
    except FileNotFoundError:  # no git: the taxonomy works, only `taxonomy diff` needs it
        return False
    sample = str(data_dir("taxonomy"))
    return all(
        git(*args)
        for args in (
            ("init", "-q", "-b", "main"),
            ("--work-tree", sample, "add", "-A"),
            ("commit", "-q", "--no-verify", "-m", "the sample taxonomy labdesk seeded"),
            ("update-ref", SEED_BASE, "HEAD"),
        )
    )
