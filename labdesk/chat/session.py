"""A conversation with one model: its system prompt and turns, saved as one JSON file.

Sessions live in the workspace's ``chats/`` folder as ``<name>.json``, written atomically, so a
crash mid-save keeps the previous version and a reload gives back exactly what was saved.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from labdesk.errors import LabdeskError
from labdesk.fileio import write_json

Role = Literal["user", "assistant"]
FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class Turn:
    role: Role
    content: str
    interrupted: bool = False
    """An answer stopped before the model finished it (Ctrl-C, /stop)."""
    model: str | None = None
    """Which model wrote an assistant turn (sessions can switch models)."""


@dataclass
class ChatSession:
    model: str
    system_prompt: str
    turns: list[Turn] = field(default_factory=list)
    name: str = field(default_factory=lambda: datetime.now(UTC).strftime("chat-%Y%m%d-%H%M%S"))
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def messages(self) -> list[dict[str, str]]:
        """The conversation as chat messages, system prompt first (if any)."""
        head = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return head + [{"role": t.role, "content": t.content} for t in self.turns]

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatSession:
        turns = [Turn(**turn) for turn in data.get("turns", [])]
        return cls(
            model=data["model"],
            system_prompt=data.get("system_prompt", ""),
            turns=turns,
            name=data["name"],
            created=data.get("created", ""),
        )


def check_session_name(name: str) -> str:
    if not _NAME.match(name):
        raise LabdeskError(
            f"'{name}' is not a usable chat name",
            hint="use letters, digits, '.', '_' or '-' (up to 100 characters)",
        )
    return name


def session_path(chats: Path, name: str) -> Path:
    return chats / f"{check_session_name(name)}.json"


def save_session(chats: Path, session: ChatSession) -> Path:
    path = session_path(chats, session.name)
    write_json(path, session.to_dict())
    return path


def load_session(chats: Path, name: str) -> ChatSession:
    path = session_path(chats, name)
    if not path.is_file():
        known = ", ".join(list_sessions(chats)[:10]) or "none saved yet"
        raise LabdeskError(
            f"no saved chat named '{name}'", where=str(chats), hint=f"saved: {known}"
        )
    try:
        return ChatSession.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LabdeskError(
            f"the saved chat cannot be read ({exc})",
            where=str(path),
            hint="the file was edited or damaged; remove it or fix the JSON",
        ) from None


def list_sessions(chats: Path) -> list[str]:
    """Saved chat names, newest first."""
    files = sorted(chats.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [p.stem for p in files]
