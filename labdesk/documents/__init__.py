"""Knowledge documents: fetch a leaf's pinned git repository, read the files its patterns match,
and cut them into heading-aware passages for generation."""

from __future__ import annotations

from labdesk.documents.chunking import Chunk, chunk_documents
from labdesk.documents.resolve import Document, documents_for_leaf, resolve_documents
from labdesk.documents.sample import SAMPLE_SCHEME, build_sample_repo

__all__ = [
    "SAMPLE_SCHEME",
    "Chunk",
    "Document",
    "build_sample_repo",
    "chunk_documents",
    "documents_for_leaf",
    "resolve_documents",
]
