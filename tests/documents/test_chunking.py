"""Chunking: bounded passages, headings kept with their text, nothing lost, deterministic."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labdesk.documents import Chunk, Document, chunk_documents
from labdesk.documents.chunking import markdown_sections, word_count
from labdesk.documents.sample import sample_sources
from labdesk.errors import ConfigError

_HEADING_LINE = re.compile(r"^ {0,3}#{1,6}[ \t]+\S")


def _doc(text: str, path: str = "doc.md", fmt: str = "markdown") -> Document:
    return Document(path, text, "repo", "0" * 40, fmt)


def _sample_docs() -> list[Document]:
    return [
        _doc(p.read_text(encoding="utf-8"), p.name) for p in sorted(sample_sources().glob("*.md"))
    ]


@pytest.fixture(scope="module")
def sp_count(shared_fixtures_path: Path) -> Callable[[str], int]:
    import sentencepiece

    model = shared_fixtures_path / "stories260K" / "tok512.model"
    processor = sentencepiece.SentencePieceProcessor(model_file=str(model))
    return lambda text: len(processor.encode(text))


@pytest.fixture(scope="module")
def shared_fixtures_path() -> Path:
    from tests.conftest import SHARED_FIXTURES

    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"real-world fixtures not found at {SHARED_FIXTURES}")
    return SHARED_FIXTURES


def _summit_docs(shared: Path, tmp: Path, names: list[str]) -> list[Document]:
    clone = tmp / "summit"
    subprocess.run(
        ["git", "clone", "-q", str(shared / "summit-knowledge.bundle"), str(clone)], check=True
    )
    return [_doc((clone / n).read_text(encoding="utf-8"), n) for n in names]


def check_invariants(
    docs: list[Document], chunks: list[Chunk], max_tokens: int, count: Callable[[str], int]
) -> None:
    """What every chunking must satisfy, whatever the text and the budget."""
    for doc in docs:
        own = [c for c in chunks if c.document == doc.path]
        assert [c.index for c in own] == list(range(len(own)))
        # the spans tile the document exactly: no text lost, none duplicated
        if own:
            assert own[0].start == 0 and own[-1].end == len(doc.text)
            assert all(a.end == b.start for a, b in pairwise(own))
        assert "".join(doc.text[c.start : c.end] for c in own).strip() == doc.text.strip()
        for chunk in own:
            assert chunk.tokens == count(chunk.text) <= max_tokens
            body = doc.text[chunk.start : chunk.end].lstrip("\n").rstrip()
            assert chunk.text.endswith(body)
            # anything before the passage is repeated heading lines, nothing else
            prefix = chunk.text[: len(chunk.text) - len(body)]
            assert all(_HEADING_LINE.match(line) for line in prefix.split("\n") if line)


@pytest.mark.parametrize("max_tokens", [12, 40, 120, 400])
def test_sample_documents_with_word_budget(max_tokens: int) -> None:
    docs = _sample_docs()
    chunks = chunk_documents(docs, max_tokens)
    check_invariants(docs, chunks, max_tokens, word_count)
    assert chunks == chunk_documents(docs, max_tokens)  # deterministic


@pytest.mark.parametrize("max_tokens", [32, 128, 512])
def test_real_articles_with_a_real_tokenizer(
    max_tokens: int,
    sp_count: Callable[[str], int],
    shared_fixtures_path: Path,
    tmp_path: Path,
) -> None:
    docs = _summit_docs(
        shared_fixtures_path, tmp_path, ["chickadee.md", "mitochondrion.md", "federation_square.md"]
    )
    chunks = chunk_documents(docs, max_tokens, sp_count)
    check_invariants(docs, chunks, max_tokens, sp_count)
    # the budget is used: passages are not needlessly tiny
    big = [c for c in chunks if c.tokens > max_tokens // 2]
    assert len(big) >= len(chunks) // 2
    # every passage but those before the first heading knows its heading path
    assert all(c.heading for c in chunks if c.start > 0)


def test_headings_stay_with_their_text_and_split_sections_repeat_them() -> None:
    long_section = " ".join(f"Sentence number {i} about owls." for i in range(40))
    text = (
        "# Birds\n\nBirds are animals.\n\n"
        "## Owls\n\n" + long_section + "\n\n"
        "### Barn owls\n\nBarn owls are pale.\n\n"
        "## Finches\n\nFinches are small.\n"
    )
    chunks = chunk_documents([_doc(text)], max_tokens=60)
    check_invariants([_doc(text)], chunks, 60, word_count)
    owls = [c for c in chunks if c.heading == "Birds > Owls"]
    assert len(owls) >= 3
    assert owls[0].text.startswith("# Birds\n\n## Owls\n\nSentence number 0")
    for continuation in owls[1:]:
        assert continuation.text.startswith("# Birds\n\n## Owls\n\nSentence number")
    for chunk in chunks:
        # a heading never ends a passage without its text
        last_line = chunk.text.rstrip().splitlines()[-1]
        assert not _HEADING_LINE.match(last_line), chunk.text
    barn = next(c for c in chunks if "Barn owls are pale." in c.text)
    assert "### Barn owls\n\nBarn owls are pale." in barn.text
    assert barn.text.startswith("# Birds\n\n")
    # small neighbouring sections share a passage
    assert any("Barn owls are pale." in c.text and "Finches are small." in c.text for c in chunks)


def test_sections_respect_code_fences_and_heading_levels() -> None:
    text = (
        "Intro before any heading.\n\n"
        "# Top\n\n```sh\n# not a heading\n```\n\n"
        "## Mid ##\n\ntext\n\n#### Deep\n\nmore\n\n## Next\n\nend\n"
    )
    paths = [s.path for s in markdown_sections(text)]
    assert paths == [(), ("Top",), ("Top", "Mid"), ("Top", "Mid", "Deep"), ("Top", "Next")]
    chunks = chunk_documents([_doc(text)], max_tokens=6)
    check_invariants([_doc(text)], chunks, 6, word_count)
    assert chunks[0].heading is None and chunks[0].text == "Intro before any heading."


def test_plain_text_and_pdf_have_no_headings() -> None:
    text = "# looks like a heading\n\n" + "Some words here. " * 30
    doc = _doc(text, "notes.txt", "text")
    chunks = chunk_documents([doc], max_tokens=20)
    check_invariants([doc], chunks, 20, word_count)
    assert all(c.heading is None for c in chunks)
    assert not chunks[1].text.startswith("#")


def test_budget_too_small_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="max_tokens must be at least 1"):
        chunk_documents([_doc("hello")], 0)
    with pytest.raises(ConfigError, match="too small"):
        chunk_documents([_doc("hello")], 1, count_tokens=lambda s: len(s) + 1)


def test_blank_document_gives_no_passages() -> None:
    assert chunk_documents([_doc("\n\n  \n")], 10) == []


_markdown_line = st.one_of(
    st.text(alphabet="abc .!?\t#", min_size=0, max_size=40),
    st.builds(lambda n, t: "#" * n + " " + t, st.integers(1, 7), st.text("xyz ", max_size=12)),
    st.just("```"),
    st.just(""),
)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(_markdown_line, max_size=40),
    max_tokens=st.integers(1, 30),
    by_chars=st.booleans(),
)
def test_invariants_hold_for_any_text(lines: list[str], max_tokens: int, by_chars: bool) -> None:
    doc = _doc("\n".join(lines))
    count = (lambda s: len(s.strip())) if by_chars else word_count
    chunks = chunk_documents([doc], max_tokens, count)
    if doc.text.strip():
        check_invariants([doc], chunks, max_tokens, count)
    else:
        assert chunks == []
