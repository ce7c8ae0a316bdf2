"""Document repositories: one bare clone per source in the cache, read at a pinned commit.

Files are read straight from git's object store (`ls-tree` + `cat-file`), never checked out:
nothing on disk outside the cache is touched, two processes can read the same clone at once, and
a symlink is only a blob holding its target, so following one is a decision we make (see
`labdesk.documents.resolve`), not something the file system does for us.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from labdesk.errors import DocumentError

_COMMIT_RE = re.compile(r"^[0-9a-fA-F]{4,64}$")
_SCP_LIKE_RE = re.compile(r"^[\w.-]+@[\w.-]+:")  # git@github.com:owner/repo.git
_REMOTE_SCHEMES = {"http", "https", "ssh", "git", "git+ssh", "ssh+git"}

# A protocol that runs commands (`ext::`) is never acceptable in a repository field.
_SAFE_CONFIG = ("-c", "protocol.ext.allow=never")


@dataclass(frozen=True)
class Source:
    """Where a repository is fetched from: a remote URL or a local repository / bundle path."""

    location: str
    """What git clones from (a URL, or an absolute local path)."""
    local: bool


@dataclass(frozen=True)
class TreeEntry:
    mode: str
    """git file mode: 100644 / 100755 regular file, 120000 symlink, 160000 submodule."""
    sha: str

    @property
    def is_symlink(self) -> bool:
        return self.mode == "120000"

    @property
    def is_file(self) -> bool:
        return self.mode in ("100644", "100755", "100664")


def git_executable() -> str:
    git = shutil.which("git")
    if git is None:
        raise DocumentError(
            "git is not installed, so knowledge documents cannot be fetched",
            hint="install git (https://git-scm.com/downloads) and make sure it is on PATH",
        )
    return git


def run_git(
    args: Sequence[str],
    *,
    git_dir: Path | None = None,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    what: str,
    where: str | None = None,
    hint: str | None = None,
) -> bytes:
    """Run git and return its stdout; a failure becomes a DocumentError quoting git's message."""
    command = [git_executable(), *_SAFE_CONFIG]
    if git_dir is not None:
        command += ["--git-dir", str(git_dir)]
    # Never wait for a password or a host-key question nobody can see (the TUI owns the terminal).
    full_env = {
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        **os.environ,
        **(env or {}),
        "GIT_TERMINAL_PROMPT": "0",
    }
    result = subprocess.run(
        [*command, *args],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        env=full_env,
        check=False,
    )
    if result.returncode != 0:
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        message = f"{what}: {detail[-1]}" if detail else what
        raise DocumentError(message, where=where, hint=hint)
    return result.stdout


def parse_source(repo: str, base_dir: Path | None) -> Source:
    """Classify a qna.yaml `repo` value: remote URL, `file://` URL, or a local path."""
    text = repo.strip()
    if not text:
        raise DocumentError("the document repository is empty", hint="set document.repo")
    if _SCP_LIKE_RE.match(text):
        return Source(text, local=False)
    parsed = urlparse(text)
    if parsed.scheme in _REMOTE_SCHEMES:
        return Source(text, local=False)
    if parsed.scheme == "file":
        path = Path(parsed.path)
    elif "://" in text:
        raise DocumentError(
            f"unsupported repository URL scheme '{parsed.scheme}'",
            where=repo,
            hint="use an https:// or ssh:// URL, a file:// URL, or a local path",
        )
    else:
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
    path = path.resolve()
    if not path.exists():
        raise DocumentError(
            "local document repository not found",
            where=str(path),
            hint="point document.repo at a git repository (or bundle) on this machine; "
            "a relative path is taken from the taxonomy folder",
        )
    return Source(str(path), local=True)


def check_commit(commit: str) -> str:
    text = commit.strip()
    if not _COMMIT_RE.match(text):
        raise DocumentError(
            f"document.commit '{commit}' is not a commit hash",
            hint="pin the exact commit (e.g. the output of `git rev-parse HEAD`); "
            "a branch or tag name would let the documents change under the leaf",
        )
    return text.lower()


def cache_path(cache_dir: Path, source: Source) -> Path:
    """One bare clone per source: a readable name plus a hash of the exact location."""
    stem = re.sub(r"\.(git|bundle)$", "", source.location.rstrip("/").rsplit("/", 1)[-1])
    stem = re.sub(r"[^\w.-]", "_", stem)[:40] or "repo"
    digest = hashlib.sha256(source.location.encode("utf-8")).hexdigest()[:12]
    return cache_dir / f"{stem}-{digest}.git"


def ensure_clone(clone: Path, source: Source) -> None:
    """Clone `source` into `clone` once. A clone is made beside and renamed into place, so a
    concurrent process either sees no clone or a complete one."""
    if (clone / "HEAD").is_file():
        return
    clone.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{clone.name}.", dir=clone.parent))
    try:
        run_git(
            ["clone", "--bare", "--quiet", "--", source.location, str(scratch / "repo.git")],
            what="could not clone the document repository",
            where=source.location,
            hint="check the URL and your network (or use a local path / file:// URL offline)",
        )
        try:
            (scratch / "repo.git").rename(clone)
        except OSError:
            if not (clone / "HEAD").is_file():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def resolve_commit(clone: Path, source: Source, commit: str) -> str:
    """The full hash of `commit`, fetching from the source only when the clone lacks it."""
    full = _rev_parse(clone, commit)
    if full is None:
        _fetch(clone, source, commit)
        full = _rev_parse(clone, commit)
    if full is None:
        raise DocumentError(
            f"commit {commit} is not in the document repository",
            where=source.location,
            hint="check document.commit in qna.yaml, and that the commit was pushed to that repository",
        )
    # A ref keeps the pinned commit alive even if the source force-pushes it away later.
    if not (clone / "refs" / "labdesk" / "pins" / full).is_file():
        run_git(
            ["update-ref", f"refs/labdesk/pins/{full}", full],
            git_dir=clone,
            what="could not record the pinned commit",
        )
    return full


def _rev_parse(clone: Path, commit: str) -> str | None:
    try:
        out = run_git(
            ["rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"],
            git_dir=clone,
            what="",
        )
    except DocumentError:
        return None
    return out.decode().strip() or None


def _fetch(clone: Path, source: Source, commit: str) -> None:
    refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
    try:
        run_git(
            ["fetch", "--quiet", "--", source.location, *refspecs],
            git_dir=clone,
            what="could not fetch the document repository",
            where=source.location,
            hint="check your network, or the repository's URL",
        )
    except DocumentError:
        # Another process may have fetched the same refs at the same moment (ref lock).
        if _rev_parse(clone, commit) is not None:
            return
        raise
    if _rev_parse(clone, commit) is None and len(commit) in (40, 64):
        # Servers such as GitHub hand out commits no branch points at, when asked by full hash.
        with suppress(DocumentError):  # a refusal is reported by the caller as an unknown commit
            run_git(["fetch", "--quiet", "--", source.location, commit], git_dir=clone, what="")


def list_tree(clone: Path, commit: str) -> dict[str, TreeEntry]:
    """Every path in the commit's tree (recursive), with its mode and blob hash."""
    out = run_git(
        ["ls-tree", "-r", "-z", "--full-tree", commit],
        git_dir=clone,
        what="could not list the files of the commit",
    )
    entries: dict[str, TreeEntry] = {}
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, _kind, sha = meta.decode().split()
        entries[raw_path.decode("utf-8", "surrogateescape")] = TreeEntry(mode, sha)
    return entries


def read_blob(clone: Path, sha: str) -> bytes:
    return run_git(["cat-file", "blob", sha], git_dir=clone, what="could not read a file")


def read_blobs(clone: Path, shas: Sequence[str]) -> dict[str, bytes]:
    """Many blobs through one `git cat-file --batch` (one process, not one per file)."""
    if not shas:
        return {}
    out = run_git(
        ["cat-file", "--batch"],
        git_dir=clone,
        stdin="".join(f"{sha}\n" for sha in shas).encode(),
        what="could not read the documents",
    )
    blobs: dict[str, bytes] = {}
    pos = 0
    for _ in shas:
        header_end = out.index(b"\n", pos)
        sha, _kind, size = out[pos:header_end].decode().split()
        start = header_end + 1
        blobs[sha] = out[start : start + int(size)]
        pos = start + int(size) + 1  # the content is followed by a newline
    return blobs
