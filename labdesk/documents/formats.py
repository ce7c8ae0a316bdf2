"""Turn a document file's bytes into text: Markdown and plain text as UTF-8, PDF through pypdf."""

from __future__ import annotations

import io
from pathlib import PurePosixPath

from labdesk.errors import DocumentError

FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".pdf": "pdf",
}
"""File suffix (lower case) → format name."""

_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def format_of(path: str, where: str) -> str:
    suffix = PurePosixPath(path).suffix.lower()
    if suffix not in FORMATS:
        shown = f"'{suffix}'" if suffix else "without a suffix"
        raise DocumentError(
            f"document {path} has an unsupported format ({shown})",
            where=where,
            hint=f"labdesk reads {', '.join(sorted(FORMATS))} files: convert it to Markdown "
            "or PDF, or narrow document.patterns so it is not matched",
        )
    return FORMATS[suffix]


def decode(data: bytes, fmt: str, path: str, where: str) -> str:
    """The document's text with `\\n` line ends; empty or unreadable files are errors."""
    if data.startswith(_LFS_POINTER):
        raise DocumentError(
            f"document {path} is a Git LFS pointer, not the file itself",
            where=where,
            hint="commit the document to git directly (labdesk does not download LFS objects)",
        )
    text = _pdf_text(data, path, where) if fmt == "pdf" else _utf8(data, path, where)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise DocumentError(
            f"document {path} holds no text",
            where=where,
            hint="a scanned PDF needs OCR first; otherwise add the text or drop the pattern",
        )
    return text


def _utf8(data: bytes, path: str, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"document {path} is not UTF-8 text (byte {exc.start})",
            where=where,
            hint="save the file as UTF-8",
        ) from exc


def _pdf_text(data: bytes, path: str, where: str) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError(
                f"PDF {path} is password-protected",
                where=where,
                hint="commit an unprotected copy of the PDF",
            )
        pages = [page.extract_text() or "" for page in reader.pages]
    except DocumentError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(
            f"PDF {path} cannot be read ({type(exc).__name__}: {exc})",
            where=where,
            hint="check the file opens in a PDF viewer; re-export it, or convert it to Markdown",
        ) from exc
    # Pages are joined by a blank line, so the chunker sees a paragraph break between them.
    return "\n\n".join(page.strip("\n") for page in pages)
