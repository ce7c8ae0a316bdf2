"""`labdesk documents show LEAF`: a knowledge leaf's documents at their pinned commit, and the
passages generation will read from them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# The default passage size is the recipe's, so what is shown is what generation would cut.
_DEFAULT_TOKENS = 400


def register(sub: Any) -> None:
    parser = sub.add_parser("documents", help="show a knowledge leaf's documents and passages")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    show = verbs.add_parser(
        "show",
        help="fetch a knowledge leaf's documents at their pinned commit and list their passages",
        description="Documents are cloned once into the workspace cache and read at the commit "
        "the leaf pins. Passage sizes are counted in words here; generation counts the "
        "teacher's tokens.",
    )
    show.add_argument("leaf", help="leaf path, e.g. knowledge/geography/islands/kelderwick")
    show.add_argument(
        "--taxonomy",
        type=Path,
        help="taxonomy folder (default: the workspace's, seeded from the sample)",
    )
    show.add_argument(
        "--max-tokens",
        type=int,
        default=_DEFAULT_TOKENS,
        metavar="N",
        help=f"passage size (default: {_DEFAULT_TOKENS}, the recipes' generate.chunk_tokens)",
    )
    show.add_argument(
        "--text", action="store_true", help="print each passage's full text, not a preview"
    )
    show.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    from rich.markup import escape
    from rich.table import Table

    from labdesk.cli.render import console
    from labdesk.documents import chunk_documents, documents_for_leaf
    from labdesk.taxonomy import load_taxonomy
    from labdesk.workspace import Workspace

    ws = Workspace.open()
    root = args.taxonomy if args.taxonomy is not None else ws.ensure_taxonomy()
    leaf = load_taxonomy(root).leaf(_leaf_path(args.leaf, root))
    docs = documents_for_leaf(leaf, ws.cache / "documents")
    chunks = chunk_documents(docs, args.max_tokens)

    files = Table("document", "format", "words", "passages", title=f"{leaf.path}")
    for doc in docs:
        files.add_row(
            escape(doc.path),
            doc.format,
            str(len(doc.text.split())),
            str(sum(1 for c in chunks if c.document == doc.path)),
        )
    if docs:
        files.caption = f"{escape(docs[0].repo)} @ {docs[0].commit}"
    console.print(files)

    if args.text:
        for chunk in chunks:
            console.rule(f"{escape(chunk.document)} #{chunk.index} · {chunk.tokens} words")
            console.print(chunk.text, markup=False, highlight=False)
        return 0
    texts = {doc.path: doc.text for doc in docs}
    passages = Table("passage", "heading", "words", "starts with")
    for chunk in chunks:
        # the preview skips repeated heading lines: they are in the heading column
        own = texts[chunk.document][chunk.start : chunk.end]
        body = " ".join(line for line in own.split("\n") if not line.startswith("#"))
        body = " ".join(body.split())
        passages.add_row(
            escape(f"{chunk.document} #{chunk.index}"),
            escape(chunk.heading or "—"),
            str(chunk.tokens),
            escape(body[:50] + ("…" if len(body) > 50 else "")),
        )
    console.print(passages)
    return 0


def _leaf_path(given: str, root: Path) -> str:
    """A leaf path relative to the taxonomy; a path on disk inside it is accepted too."""
    path = Path(given)
    if path.exists():
        resolved = path.resolve()
        if resolved.name == "qna.yaml":
            resolved = resolved.parent
        if resolved.is_relative_to(root.resolve()):
            return resolved.relative_to(root.resolve()).as_posix()
    return given
