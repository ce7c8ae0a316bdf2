"""The one exception family for problems a user can fix.

Front ends print these without a traceback: what went wrong, where, and how to fix it.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


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


class DiskFull(LabdeskError):
    """A write ran out of disk space (or quota); what was written before it is kept."""


_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException, path: str | os.PathLike[str] | None = None) -> DiskFull | None:
    """`exc` as a `DiskFull` naming `path` (else the file the OS names, if any), or None when
    `exc` is not a full disk. labdesk's own writes fail before anything is renamed over the old
    file, or after whole lines only, so what a run already holds is intact."""
    if not isinstance(exc, OSError) or exc.errno not in _NO_SPACE:
        return None
    message = "the disk is full" if exc.errno == errno.ENOSPC else "the disk quota is used up"
    where = os.fspath(path) if path is not None else exc.filename
    keep = "everything written before this is kept: free some space and run it again to resume"
    if not where:
        return DiskFull(message, hint=keep)
    folder = Path(where).parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free_gib = shutil.disk_usage(folder).free / 2**30
    return DiskFull(message, where=str(where), hint=f"{free_gib:.1f} GiB free in {folder}; {keep}")
