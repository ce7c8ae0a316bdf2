"""Resolving `document: {repo, commit, patterns}` against real git repositories."""

from __future__ import annotations

import hashlib
import re
import subprocess
import threading
from pathlib import Path

import pytest
import yaml

from labdesk.documents import Document, documents_for_leaf, resolve_documents
from labdesk.errors import DocumentError
from labdesk.taxonomy.leaves import QA, DocumentRef, Leaf, Seed
from tests.documents.gitutil import commit_files, git, make_repo, minimal_pdf

SUMMIT_PIN = "5f7158a"


@pytest.fixture(scope="module")
def summit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working clone of the real Summit_knowledge repository, from its bundle."""
    from tests.conftest import SHARED_FIXTURES

    bundle = SHARED_FIXTURES / "summit-knowledge.bundle"
    if not bundle.is_file():
        pytest.skip(f"real-world fixture not found: {bundle}")
    clone = tmp_path_factory.mktemp("summit") / "Summit_knowledge"
    subprocess.run(["git", "clone", "-q", str(bundle), str(clone)], check=True)
    return clone


def _show(repo: Path, commit: str, path: str) -> str:
    """The file's exact text at the commit, as git itself gives it (line ends normalised)."""
    raw = subprocess.run(
        ["git", "-C", str(repo), "cat-file", "blob", f"{commit}:{path}"],
        capture_output=True,
        check=True,
    ).stdout
    return raw.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")


def _ls(repo: Path, commit: str) -> list[str]:
    return git(repo, "ls-tree", "--name-only", commit).splitlines()


# --- the real document repository -------------------------------------------------------------


def test_summit_at_pinned_commit_reads_every_markdown_file(summit: Path, tmp_path: Path) -> None:
    docs = resolve_documents(DocumentRef(str(summit), SUMMIT_PIN, ("*.md",)), tmp_path)
    full = git(summit, "rev-parse", SUMMIT_PIN)
    expected = sorted(p for p in _ls(summit, full) if p.endswith(".md"))
    assert [d.path for d in docs] == expected
    assert "LICENSE" not in {d.path for d in docs}
    assert len(docs) >= 50
    for doc in docs:
        assert doc.commit == full
        assert doc.format == "markdown"
        assert doc.repo == str(summit)
        assert doc.text == _show(summit, full, doc.path)


def test_summit_pinned_commit_is_honoured_not_head(summit: Path, tmp_path: Path) -> None:
    # chickadee.md was deleted at 05ca610 and re-added, cleaned, at 5f7158a (HEAD)
    with pytest.raises(DocumentError, match="matches no file at commit 05ca610"):
        resolve_documents(DocumentRef(str(summit), "05ca610", ("chickadee.md",)), tmp_path)
    # an older commit gives that commit's text, which differs from HEAD's
    older = git(summit, "log", "--format=%H", "--diff-filter=A", "--", "chickadee.md").split()[-1]
    [old_doc] = resolve_documents(DocumentRef(str(summit), older, ("chickadee.md",)), tmp_path)
    [new_doc] = resolve_documents(DocumentRef(str(summit), SUMMIT_PIN, ("chickadee.md",)), tmp_path)
    assert old_doc.text != new_doc.text
    assert old_doc.text == _show(summit, older, "chickadee.md")
    assert old_doc.commit == older


def test_bundle_file_itself_is_a_repository(tmp_path: Path, shared_fixtures: Path) -> None:
    bundle = shared_fixtures / "summit-knowledge.bundle"
    docs = resolve_documents(DocumentRef(str(bundle), SUMMIT_PIN, ("swifties.md",)), tmp_path)
    assert [d.path for d in docs] == ["swifties.md"]
    assert "Swifties" in docs[0].text


def _community_refs(shared: Path) -> list[tuple[Path, DocumentRef]]:
    refs = []
    for qna in sorted((shared / "instructlab-taxonomy/files/knowledge").glob("*/qna.yaml")):
        text = qna.read_text(encoding="utf-8", errors="replace")
        if "Summit_knowledge" not in text:
            continue
        try:
            doc = yaml.safe_load(text)["document"]
            refs.append((qna, DocumentRef(doc["repo"], str(doc["commit"]), tuple(doc["patterns"]))))
        except (yaml.YAMLError, KeyError, TypeError):
            continue  # about half the community files are broken YAML; the parser's tests cover them
    return refs


def test_real_community_leaves_resolve_against_the_bundle(
    summit: Path, tmp_path: Path, shared_fixtures: Path
) -> None:
    refs = _community_refs(shared_fixtures)
    assert len(refs) > 100
    unique = {(ref.commit, ref.patterns) for _, ref in refs}
    assert all("Summit_knowledge" in ref.repo for _, ref in refs)
    resolved = failed = 0
    for commit, patterns in sorted(unique):
        # the URL is rewritten to the local clone: the test runs offline
        ref = DocumentRef(str(summit), commit, patterns)
        try:
            docs = resolve_documents(ref, tmp_path)
        except DocumentError as exc:
            # Real contributors sometimes wrote a branch name (`HEAD`), or pinned a commit from
            # before they added their file: each must be reported as exactly that.
            if re.fullmatch(r"[0-9a-f]{7,40}", commit):
                assert "matches no file" in exc.message, exc
                assert not set(patterns) & set(_ls(summit, commit)), (commit, patterns)
            else:
                assert "is not a commit hash" in exc.message, exc
            failed += 1
            continue
        resolved += 1
        assert [d.path for d in docs] == list(patterns)
        for doc in docs:
            assert doc.commit.startswith(commit)
            assert doc.text == _show(summit, commit, doc.path)
    assert resolved >= 0.8 * len(unique), (resolved, failed)
    # all of them shared one clone in the cache
    assert len(list(tmp_path.glob("*.git"))) == 1


# --- a repository made here -------------------------------------------------------------------


@pytest.fixture
def docs_repo(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "user-docs"
    commit = make_repo(
        repo,
        {
            "guide.md": "# Guide\n\nHow to brew tea.\n",
            "notes/steeping.txt": "Steep green tea for two minutes.\r\nThen pour.\r\n",
            "notes/deep/ratios.md": "# Ratios\n\nOne spoon per cup.\n",
            ".hidden.md": "# Hidden\n",
            "paper.pdf": minimal_pdf(["Tea was first brewed in China.", "It spread west later."]),
            "broken.pdf": b"%PDF-1.4\nthis is not really a pdf\n",
            "report.docx": b"PK\x03\x04 not readable",
            "latin1.txt": "caf\xe9".encode("latin-1"),
            "blank.md": "\n  \n",
        },
        links={"alias.md": "notes/deep/ratios.md"},
    )
    return repo, commit


def _ref(repo: Path, commit: str, *patterns: str) -> DocumentRef:
    return DocumentRef(str(repo), commit, patterns)


def test_patterns_follow_glob_rules(docs_repo: tuple[Path, str], tmp_path: Path) -> None:
    repo, commit = docs_repo
    cache = tmp_path / "cache"

    def paths(*patterns: str) -> list[str]:
        return [d.path for d in resolve_documents(_ref(repo, commit, *patterns), cache)]

    assert paths("guide.md") == ["guide.md"]
    assert paths("g*.md", "alias.md") == ["guide.md", "alias.md"]  # pattern order, then path
    assert paths("notes/*.txt") == ["notes/steeping.txt"]
    assert paths("**/ratios.md") == ["notes/deep/ratios.md"]
    assert paths("./notes/deep/*.md") == ["notes/deep/ratios.md"]
    assert paths(".*.md") == [".hidden.md"]  # wildcards skip dot-files unless asked
    assert paths("guide.md", "g*.md") == ["guide.md"]  # each file once


def test_text_pdf_and_symlink_inside_repo_are_read(
    docs_repo: tuple[Path, str], tmp_path: Path
) -> None:
    repo, commit = docs_repo
    docs = resolve_documents(
        _ref(repo, commit, "notes/*.txt", "paper.pdf", "alias.md"), tmp_path / "cache"
    )
    by_path = {d.path: d for d in docs}
    assert by_path["notes/steeping.txt"].text == "Steep green tea for two minutes.\nThen pour.\n"
    assert by_path["notes/steeping.txt"].format == "text"
    pdf = by_path["paper.pdf"]
    assert pdf.format == "pdf"
    assert "Tea was first brewed in China." in pdf.text
    assert "It spread west later." in pdf.text
    assert by_path["alias.md"].text == "# Ratios\n\nOne spoon per cup.\n"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("../*", "uses '..'"),
        ("notes/../../*.md", "uses '..'"),
        ("/etc/passwd", "absolute path"),
        ("C:\\Windows\\win.ini", "absolute path"),
        ("~/secret.md", "absolute path"),
        ("", "empty"),
    ],
)
def test_patterns_cannot_leave_the_repository(
    docs_repo: tuple[Path, str], tmp_path: Path, pattern: str, message: str
) -> None:
    repo, commit = docs_repo
    with pytest.raises(DocumentError, match=message):
        resolve_documents(_ref(repo, commit, pattern), tmp_path / "cache")


def test_symlinks_out_of_the_repository_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("# Secret\n\nTOP-SECRET-TEXT\n")
    repo = tmp_path / "repo"
    commit = make_repo(
        repo,
        {"ok.md": "# Fine\n"},
        links={"escape.md": "../secret.md", "absolute.md": str(secret), "dangling.md": "nope.md"},
    )
    cache = tmp_path / "cache"
    for pattern, message in [
        ("escape.md", "outside the repository"),
        ("absolute.md", "outside the repository"),
        ("*.md", "outside the repository"),
        ("dangling.md", "not a file in the commit"),
    ]:
        with pytest.raises(DocumentError, match=message) as caught:
            resolve_documents(_ref(repo, commit, pattern), cache)
        assert "TOP-SECRET-TEXT" not in str(caught.value)
    assert [d.path for d in resolve_documents(_ref(repo, commit, "ok.md"), cache)] == ["ok.md"]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("nothing-*.md", "matches no file"),
        ("report.docx", r"unsupported format \('.docx'\)"),
        ("broken.pdf", "PDF broken.pdf cannot be read"),
        ("latin1.txt", "not UTF-8"),
        ("blank.md", "holds no text"),
    ],
)
def test_unreadable_documents_are_clear_errors(
    docs_repo: tuple[Path, str], tmp_path: Path, pattern: str, message: str
) -> None:
    repo, commit = docs_repo
    with pytest.raises(DocumentError, match=message) as caught:
        resolve_documents(_ref(repo, commit, pattern), tmp_path / "cache")
    assert caught.value.hint
    assert caught.value.where == f"{repo}@{commit[:12]}"


def test_no_match_hint_lists_the_files_there(docs_repo: tuple[Path, str], tmp_path: Path) -> None:
    repo, commit = docs_repo
    with pytest.raises(DocumentError) as caught:
        resolve_documents(_ref(repo, commit, "docs/guide.md"), tmp_path / "cache")
    assert "guide.md" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("commit", "message"),
    [
        ("0123456789abcdef0123456789abcdef01234567", "is not in the document repository"),
        ("main", "not a commit hash"),
        ("HEAD~1", "not a commit hash"),
    ],
)
def test_bad_commits(
    docs_repo: tuple[Path, str], tmp_path: Path, commit: str, message: str
) -> None:
    repo, _ = docs_repo
    with pytest.raises(DocumentError, match=message):
        resolve_documents(_ref(repo, commit, "guide.md"), tmp_path / "cache")


def test_repository_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    commit = "0" * 40
    with pytest.raises(DocumentError, match="local document repository not found"):
        resolve_documents(DocumentRef(str(tmp_path / "missing"), commit, ("*.md",)), cache)
    not_a_repo = tmp_path / "plain"
    not_a_repo.mkdir()
    with pytest.raises(DocumentError, match="could not clone the document repository") as caught:
        resolve_documents(DocumentRef(f"file://{not_a_repo}", commit, ("*.md",)), cache)
    assert caught.value.where == str(not_a_repo)
    with pytest.raises(DocumentError, match="unsupported repository URL scheme 'ftp'"):
        resolve_documents(DocumentRef("ftp://example.com/x.git", commit, ("*.md",)), cache)
    # git's command-running transport never runs, whatever the repo field says
    marker = tmp_path / "ran"
    with pytest.raises(DocumentError):
        resolve_documents(DocumentRef(f"ext::sh -c touch% {marker}", commit, ("*.md",)), cache)
    assert not marker.exists()
    assert not list(cache.glob("*.git"))  # a failed clone leaves nothing behind
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DocumentError, match="git is not installed"):
        resolve_documents(DocumentRef(str(not_a_repo), commit, ("*.md",)), cache)


def _fingerprint(repo: Path) -> str:
    """Every file under the repository (work tree and .git), with its bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in repo.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_cache_clones_once_fetches_new_pins_and_leaves_user_repo_alone(tmp_path: Path) -> None:
    repo = tmp_path / "mine"
    first = make_repo(repo, {"a.md": "# A\n\nfirst\n"})
    cache = tmp_path / "cache"
    before = _fingerprint(repo)
    assert resolve_documents(_ref(repo, first, "a.md"), cache)[0].text == "# A\n\nfirst\n"
    [clone] = list(cache.glob("*.git"))
    assert clone.name.startswith("mine-")
    # a new commit in the user's repo: its pin is fetched into the same clone
    second = commit_files(repo, {"a.md": "# A\n\nsecond\n"})
    during = _fingerprint(repo)
    assert resolve_documents(_ref(repo, second, "a.md"), cache)[0].text == "# A\n\nsecond\n"
    assert resolve_documents(_ref(repo, first, "a.md"), cache)[0].text == "# A\n\nfirst\n"
    assert list(cache.glob("*.git")) == [clone]
    assert before != during and _fingerprint(repo) == during  # only our own commit changed it
    # the clone is bare: nothing was checked out
    assert not list(clone.glob("*.md"))


def test_file_url_and_relative_path(docs_repo: tuple[Path, str], tmp_path: Path) -> None:
    repo, commit = docs_repo
    cache = tmp_path / "cache"
    [by_url] = resolve_documents(DocumentRef(f"file://{repo}", commit, ("guide.md",)), cache)
    [by_rel] = resolve_documents(
        DocumentRef("user-docs", commit, ("guide.md",)), cache, base_dir=tmp_path
    )
    assert by_url.text == by_rel.text == "# Guide\n\nHow to brew tea.\n"


def test_concurrent_resolvers_share_one_clone(docs_repo: tuple[Path, str], tmp_path: Path) -> None:
    repo, commit = docs_repo
    cache = tmp_path / "cache"
    results: list[list[Document]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(resolve_documents(_ref(repo, commit, "g*.md", "**/r*.md"), cache))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 4 and all(r == results[0] for r in results)
    assert len(list(cache.glob("*.git"))) == 1
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]


def test_leaf_errors_point_at_the_qna_yaml_line(
    docs_repo: tuple[Path, str], tmp_path: Path
) -> None:
    _, commit = docs_repo
    leaf_dir = tmp_path / "taxonomy" / "knowledge" / "tea"
    leaf_dir.mkdir(parents=True)
    qna = leaf_dir / "qna.yaml"
    qna.write_text(
        "version: 3\n"
        "document:\n"
        f"  repo: ../user-docs\n"
        f"  commit: {commit}\n"
        "  patterns:\n"
        "    - guide.md\n"
        "    - missing.md\n"
    )
    leaf = Leaf(
        path="knowledge/tea",
        file=qna,
        kind="knowledge",
        version=3,
        created_by="me",
        task_description="tea",
        seeds=(Seed((QA("q", "a"),), "c"),),
        content_hash="x",
        domain="tea",
        document=DocumentRef("../user-docs", commit, ("guide.md", "missing.md")),
    )
    with pytest.raises(DocumentError, match=r"'missing\.md' matches no file") as caught:
        documents_for_leaf(leaf, tmp_path / "cache")
    assert caught.value.where == f"{qna}:7:7"
    # the relative repo path is taken from the taxonomy root
    good = Leaf(**{**leaf.__dict__, "document": DocumentRef("../user-docs", commit, ("guide.md",))})
    assert [d.path for d in documents_for_leaf(good, tmp_path / "cache")] == ["guide.md"]
