"""One process at a time on a run: an OS file lock on ``<run>/lock``.

Two `labdesk generate` processes on one run would each append every sample (each sample twice);
two trainers would overwrite each other's checkpoints. Whoever works on a run holds its lock for
as long as it writes there: each CLI stage command, and each job of the app. The lock is the
operating system's (`flock`, or `msvcrt.locking` on Windows), so a killed process never leaves a
stale lock behind; the file only says who holds it, for the message the next one gets.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from labdesk.errors import LabdeskError
from labdesk.runs import RunPaths


class RunBusy(LabdeskError):
    """Another process (or another job of this one) works on the run."""


@contextlib.contextmanager
def hold_run(run: RunPaths, doing: str) -> Iterator[None]:
    """Hold `run`'s lock while the block runs; `doing` says what for ("labdesk generate").

    Raises `RunBusy`, naming the process that holds it, when the run is already in use.
    """
    run.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(run.lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd):
            raise _busy(run, fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {doing}\n".encode())
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            _unlock(fd)
    finally:
        os.close(fd)


def in_use_by(run: RunPaths) -> str | None:
    """Who holds `run`'s lock ("process 123 (labdesk train)"), or None when it is free."""
    if not run.lock.is_file():
        return None
    fd = os.open(run.lock, os.O_RDWR)
    try:
        if _try_lock(fd):
            _unlock(fd)
            return None
        return _holder(fd)
    finally:
        os.close(fd)


def _busy(run: RunPaths, fd: int) -> RunBusy:
    holder = _holder(fd)
    return RunBusy(
        f"run `{run.root.name}` is in use by {holder}",
        where=str(run.root),
        hint="wait for it to finish or stop it, then run this again; "
        "`labdesk runs list` shows which runs are in use",
    )


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    pid, _, doing = os.read(fd, 512).decode(errors="replace").strip().partition(" ")
    if not pid.isdigit():
        return "another process"  # it has the lock but has not written its name yet
    who = "this process" if int(pid) == os.getpid() else f"process {pid}"
    return f"{who} ({doing})" if doing else who


if sys.platform == "win32":
    import msvcrt

    _LOCKED_BYTE = 1 << 16
    """Windows locks are mandatory: lock a byte past the holder's name, which stays readable."""

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _LOCKED_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, _LOCKED_BYTE, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        # flock locks belong to the open file, not the process: a second job of the same
        # process opening the file again is refused too
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
