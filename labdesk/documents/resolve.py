"""Resolve a knowledge leaf's `document: {repo, commit, patterns}` into documents with their text."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from labdesk.documents import gitrepo
from labdesk.documents.formats import FORMATS, decode, format_of
from labdesk.documents.patterns import check_pattern, match_paths
from labdesk.documents.sample import SAMPLE_SCHEME, sample_repo
from labdesk.errors import DocumentError
from labdesk.taxonomy.leaves import DocumentRef, Leaf
from labdesk.yamlpath import locate

_MAX_SYMLINK_HOPS = 20


@dataclass(frozen=True)
class Document:
    path: str
    """Path inside the repository (POSIX), as the pattern matched it."""
    text: str
    repo: str
    """The leaf's `repo` value, as written."""
    commit: str
    """The full commit hash the text was read at."""
    format: str
    """``markdown``, ``text`` or ``pdf``."""


class DocumentFieldError(DocumentError):
    """A DocumentError that knows which `document` field of the qna.yaml caused it."""

    def __init__(self, cause: DocumentError, field: tuple[str | int, ...]) -> None:
        super().__init__(cause.message, where=cause.where, hint=cause.hint)
        self.field = field


@contextmanager
def _blame(*field: str | int) -> Iterator[None]:
    try:
        yield
    except DocumentFieldError:
        raise
    except DocumentError as exc:
        raise DocumentFieldError(exc, ("document", *field)) from exc


def resolve_documents(
    ref: DocumentRef, cache_dir: Path, *, base_dir: Path | None = None
) -> list[Document]:
    """The documents `ref` names, read at its pinned commit.

    `cache_dir` holds one bare clone per repository (e.g. ``<workspace>/cache/documents``); a
    clone is made once and fetched into only when the pinned commit is missing. `base_dir`
    anchors a relative local repository path (the taxonomy root, for a leaf). Every pattern must
    match at least one file; matched files are returned once each, in pattern order, then by path.
    """
    with _blame("commit"):
        commit = gitrepo.check_commit(ref.commit)
    with _blame("patterns"):
        if not ref.patterns:
            raise DocumentError("document.patterns is empty", hint="list files such as `*.md`")
    pattern_segments = []
    for index, pattern in enumerate(ref.patterns):
        with _blame("patterns", index):
            pattern_segments.append(check_pattern(pattern))
    with _blame("repo"):
        clone, source = _clone_for(ref.repo, cache_dir, base_dir)
    with _blame("commit"):
        full = gitrepo.resolve_commit(clone, source, commit)
    where = f"{ref.repo}@{full[:12]}"
    tree = gitrepo.list_tree(clone, full)
    candidates = [path for path, entry in tree.items() if entry.is_file or entry.is_symlink]

    selected: dict[str, None] = {}  # an ordered set
    for index, (pattern, segments) in enumerate(zip(ref.patterns, pattern_segments, strict=True)):
        with _blame("patterns", index):
            matched = match_paths(segments, candidates)
            if not matched:
                raise DocumentError(
                    f"document pattern '{pattern}' matches no file at commit {full[:12]}",
                    where=where,
                    hint=_nearby_files(candidates),
                )
            selected.update(dict.fromkeys(matched))

    with _blame("patterns"):
        targets = {path: _follow_symlinks(clone, tree, path, where) for path in selected}
        formats = {path: format_of(target, where) for path, target in targets.items()}
        # every format is checked before anything is read; then one git process reads them all
        blobs = gitrepo.read_blobs(clone, sorted({tree[t].sha for t in targets.values()}))
        documents = []
        for path, target in targets.items():
            text = decode(blobs[tree[target].sha], formats[path], path, where)
            documents.append(Document(path, text, ref.repo, full, formats[path]))
        return documents


def documents_for_leaf(leaf: Leaf, cache_dir: Path) -> list[Document]:
    """A knowledge leaf's documents; errors point at the offending line of its qna.yaml."""
    if leaf.document is None:
        raise DocumentError(
            f"leaf {leaf.path} has no documents (it is a {leaf.kind.replace('_', ' ')})",
            where=str(leaf.file),
            hint="only knowledge leaves name documents",
        )
    try:
        return resolve_documents(leaf.document, cache_dir, base_dir=taxonomy_root(leaf))
    except DocumentFieldError as exc:
        line, col = _locate(leaf.file, exc.field)
        message = f"{exc.message} ({exc.where})" if exc.where else exc.message
        raise DocumentError(message, where=f"{leaf.file}:{line}:{col}", hint=exc.hint) from exc


def taxonomy_root(leaf: Leaf) -> Path:
    """The taxonomy folder a leaf was loaded from (its file minus the leaf's path)."""
    root = leaf.file.parent
    for _ in PurePosixPath(leaf.path).parts:
        root = root.parent
    return root


def _clone_for(repo: str, cache_dir: Path, base_dir: Path | None) -> tuple[Path, gitrepo.Source]:
    if repo.startswith(SAMPLE_SCHEME):
        clone = sample_repo(cache_dir, repo.removeprefix(SAMPLE_SCHEME).strip("/"))
        return clone, gitrepo.Source(str(clone), local=True)
    source = gitrepo.parse_source(repo, base_dir)
    clone = gitrepo.cache_path(cache_dir, source)
    gitrepo.ensure_clone(clone, source)
    return clone, source


def _follow_symlinks(clone: Path, tree: dict[str, gitrepo.TreeEntry], path: str, where: str) -> str:
    """The tree path whose content `path` holds; a link leaving the repository is refused."""
    current = path
    for _ in range(_MAX_SYMLINK_HOPS):
        entry = tree[current]
        if not entry.is_symlink:
            if not entry.is_file:
                break
            return current
        target = gitrepo.read_blob(clone, entry.sha).decode("utf-8", "surrogateescape")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(current), target))
        if (
            target.startswith("/")
            or PureWindowsPath(target).anchor
            or resolved.split("/")[0] == ".."
        ):
            raise DocumentError(
                f"document {path} is a symlink to '{target}', outside the repository; "
                "it was not read",
                where=where,
                hint="commit the document itself, or narrow document.patterns",
            )
        if resolved not in tree:
            raise DocumentError(
                f"document {path} is a symlink to '{target}', which is not a file in the commit",
                where=where,
                hint="fix the link, or narrow document.patterns",
            )
        current = resolved
    raise DocumentError(
        f"document {path} is not a regular file (a symlink loop, or a submodule)",
        where=where,
        hint="narrow document.patterns to plain files",
    )


def _nearby_files(candidates: Sequence[str]) -> str:
    readable = [p for p in sorted(candidates) if PurePosixPath(p).suffix.lower() in FORMATS]
    if not readable:
        return "the commit holds no Markdown, text or PDF files; check document.commit"
    shown = ", ".join(readable[:8]) + (", ..." if len(readable) > 8 else "")
    return f"patterns are relative to the repository root; files there include: {shown}"


def _locate(file: Path, field: tuple[str | int, ...]) -> tuple[int, int]:
    try:
        text = file.read_text(encoding="utf-8")
    except OSError:
        return 1, 1
    return locate(text, field)
