"""The user's workspace: one folder holding models, runs, chats and their taxonomy."""

from __future__ import annotations

import os
import shutil
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
        """The user's taxonomy, seeded from the packaged sample on first use."""
        if not self.taxonomy.exists():
            shutil.copytree(data_dir("taxonomy"), self.taxonomy)
        return self.taxonomy
