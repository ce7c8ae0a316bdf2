"""Benchmark: resolving and chunking knowledge documents, ours vs the obvious baselines.

Resolve: the real Summit_knowledge repository (a bundle in ../shared/fixtures), every `*.md` at
the pinned commit. Baseline: what upstream tooling does per leaf, a fresh `git clone` plus
`git checkout COMMIT` and a glob over the work tree. Ours: a cold cache (one bare clone) and a
warm one (read straight from the object store).

Chunk: the same 50-odd articles cut to 400-token passages, counting words and counting real
SentencePiece tokens. Baseline: a fixed window of words with no notion of headings.

Run: .venv/bin/python bench/documents.py
"""

from __future__ import annotations

import glob
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from labdesk.documents import Document, chunk_documents, resolve_documents
from labdesk.taxonomy.leaves import DocumentRef

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
BUNDLE = FIXTURES / "summit-knowledge.bundle"
TOKENIZER = FIXTURES / "stories260K" / "tok512.model"
PIN = "5f7158a"
REPEATS = 5


def timed(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def baseline_clone_checkout(tmp: Path) -> list[str]:
    work = Path(tempfile.mkdtemp(dir=tmp))
    subprocess.run(["git", "clone", "-q", str(BUNDLE), str(work / "r")], check=True)
    subprocess.run(["git", "-C", str(work / "r"), "checkout", "-q", PIN], check=True)
    return [Path(p).read_text(encoding="utf-8") for p in sorted(glob.glob(str(work / "r/*.md")))]


def window_chunks(docs: list[Document], size: int) -> int:
    n = 0
    for doc in docs:
        words = doc.text.split()
        n += len([" ".join(words[i : i + size]) for i in range(0, len(words), size)])
    return n


def main() -> int:
    if not BUNDLE.is_file():
        print(f"fixture missing: {BUNDLE}")
        return 1
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ref = DocumentRef(str(BUNDLE), PIN, ("*.md",))

        def cold() -> list[Document]:
            return resolve_documents(ref, Path(tempfile.mkdtemp(dir=tmp)))

        warm_cache = tmp / "warm"
        docs = resolve_documents(ref, warm_cache)
        rows = [
            ("baseline: clone + checkout + glob", timed(lambda: baseline_clone_checkout(tmp))),
            ("labdesk, cold cache (bare clone)", timed(cold)),
            ("labdesk, warm cache", timed(lambda: resolve_documents(ref, warm_cache))),
        ]
        size = sum(len(d.text) for d in docs)
        print(f"\nResolve {len(docs)} Markdown files ({size / 1e6:.2f} MB) at {PIN}")
        print(f"median of {REPEATS} runs")
        print(f"{'method':<36} {'seconds':>8} {'vs baseline':>12}")
        base = rows[0][1]
        for name, seconds in rows:
            print(f"{name:<36} {seconds:>8.3f} {base / seconds:>11.1f}x")

        import sentencepiece

        processor = sentencepiece.SentencePieceProcessor(model_file=str(TOKENIZER))

        def sp_count(text: str) -> int:
            return len(processor.encode(text))

        counters: list[tuple[str, Callable[[str], int] | None]] = [
            ("words", None),
            ("SentencePiece tokens", sp_count),
        ]
        chunk_rows = [
            (
                "baseline: 400-word windows",
                timed(lambda: window_chunks(docs, 400)),
                window_chunks(docs, 400),
            )
        ]
        for label, counter in counters:
            chunk_rows.append(
                (
                    f"labdesk, headings, {label}",
                    timed(lambda counter=counter: chunk_documents(docs, 400, counter)),
                    len(chunk_documents(docs, 400, counter)),
                )
            )
        print(f"\nChunk the same files into passages of at most 400 (median of {REPEATS} runs)")
        print(f"{'method':<44} {'seconds':>8} {'MB/s':>7} {'passages':>9}")
        for name, seconds, count in chunk_rows:
            print(f"{name:<44} {seconds:>8.3f} {size / 1e6 / seconds:>7.1f} {count:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
