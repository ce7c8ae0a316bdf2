"""The one exception family for problems a user can fix.

Front ends print these without a traceback: what went wrong, where, and how to fix it.
"""

from __future__ import annotations


class LabdeskError(Exception):
    """A problem the user can act on.

    `where` is a location such as ``path/qna.yaml:12:3`` or a model name; `hint` says how to fix it.
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(LabdeskError):
    """A recipe or setting is malformed."""


class TaxonomyError(LabdeskError):
    """A taxonomy or qna.yaml cannot be read."""


class DocumentError(LabdeskError):
    """A knowledge document cannot be fetched, matched or read."""


class ModelError(LabdeskError):
    """A model file is missing, corrupt, unsupported or too large."""


class Cancelled(LabdeskError):
    """Work stopped at the user's request; what was written is kept."""
