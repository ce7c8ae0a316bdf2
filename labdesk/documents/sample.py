"""The sample knowledge documents, built into a git repository whose commit never changes.

The sample leaf in `taxonomy/knowledge/` must pin a commit, yet its documents ship inside the
package, not in a repository on the internet. So the repository is made on demand from the
packaged files with git plumbing (no work tree, no index, no user hooks or filters), with fixed
names, e-mails and dates: the same files always give the same commit hash, which the sample
`qna.yaml` pins. Its `repo:` field, ``labdesk-sample://kelderwick``, tells the resolver to build it
here instead of cloning: offline, from a source checkout or an installed wheel alike.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from labdesk.documents.gitrepo import run_git
from labdesk.errors import DocumentError
from labdesk.resources import package_file

if TYPE_CHECKING:
    from labdesk.documents.facts import Fact

SAMPLE_SCHEME = "labdesk-sample://"
SAMPLE_NAME = "kelderwick"

_IDENTITY = {
    "GIT_AUTHOR_NAME": "labdesk",
    "GIT_AUTHOR_EMAIL": "samples@labdesk.invalid",
    "GIT_AUTHOR_DATE": "1704067200 +0000",  # 2024-01-01T00:00:00Z
    "GIT_COMMITTER_NAME": "labdesk",
    "GIT_COMMITTER_EMAIL": "samples@labdesk.invalid",
    "GIT_COMMITTER_DATE": "1704067200 +0000",
}
_MESSAGE = "Sample knowledge documents for labdesk\n"


def sample_sources(name: str = SAMPLE_NAME) -> Path:
    folder = package_file("sample_docs", name)
    if not folder.is_dir():
        raise DocumentError(
            f"there is no sample document repository '{name}'",
            where=f"{SAMPLE_SCHEME}{name}",
            hint=f"the packaged sample is {SAMPLE_SCHEME}{SAMPLE_NAME}",
        )
    return folder


def sample_repo(cache_dir: Path, name: str = SAMPLE_NAME) -> Path:
    """The sample repository in the cache, named after its content: a newer labdesk whose
    sample documents changed builds a new one instead of reusing a stale one."""
    digest = hashlib.sha256()
    for file in _source_files(name):
        digest.update(file.name.encode() + b"\0" + _normalised(file) + b"\0")
    repo, _commit = build_sample_repo(
        cache_dir / f"sample-{name}-{digest.hexdigest()[:12]}.git", name
    )
    return repo


def build_sample_repo(dest: Path, name: str = SAMPLE_NAME) -> tuple[Path, str]:
    """Make (or find) the bare sample repository at `dest`; return it and its commit hash.

    Built beside `dest` and renamed into place, so concurrent callers never see half a repo.
    """
    files = _source_files(name)
    if (dest / "HEAD").is_file():
        return dest, _head(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        repo = scratch / "repo.git"
        run_git(
            ["init", "--quiet", "--bare", "--object-format=sha1", str(repo)],
            what="could not create the sample document repository",
        )
        tree_lines = []
        for file in files:
            sha = _git(repo, ["hash-object", "-w", "--no-filters", "--stdin"], _normalised(file))
            tree_lines.append(f"100644 blob {sha}\t{file.name}\n")
        tree = _git(repo, ["mktree"], "".join(tree_lines).encode())
        commit = _git(repo, ["commit-tree", "--no-gpg-sign", tree, "-m", _MESSAGE.strip()])
        _git(repo, ["update-ref", "refs/heads/main", commit])
        _git(repo, ["symbolic-ref", "HEAD", "refs/heads/main"])
        try:
            repo.rename(dest)
        except OSError:
            if not (dest / "HEAD").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dest, _head(dest)


def sample_facts(name: str = SAMPLE_NAME) -> list[Fact]:
    """The sample documents' sentences, each whole document cut as generation cuts a chunk."""
    from labdesk.documents.chunking import Chunk
    from labdesk.documents.facts import chunk_facts

    facts: list[Fact] = []
    for path in _source_files(name):
        facts += chunk_facts(Chunk(path.name, 0, None, path.read_text(encoding="utf-8"), 0))
    return facts


def _source_files(name: str) -> list[Path]:
    return sorted(p for p in sample_sources(name).iterdir() if p.is_file())


def _normalised(file: Path) -> bytes:
    # Line ends are normalised so a Windows checkout (autocrlf) gives the same commit hash.
    return file.read_bytes().replace(b"\r\n", b"\n")


def _git(repo: Path, args: list[str], stdin: bytes | None = None) -> str:
    out = run_git(
        args,
        git_dir=repo,
        stdin=stdin,
        env=_IDENTITY,
        what="could not build the sample document repository",
    )
    return out.decode().strip()


def _head(repo: Path) -> str:
    return _git(repo, ["rev-parse", "--verify", "HEAD^{commit}"])
