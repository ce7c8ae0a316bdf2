"""Validation throughput on the real InstructLab corpus: labdesk vs upstream's parser, same run.

    .venv/bin/python bench/taxonomy.py [--limit N]

Both sides check every file of ../shared/fixtures/instructlab-taxonomy (2,041 real qna.yaml),
laid out under their original taxonomy paths, one process each, one file after another.
Upstream is `instructlab.schema.taxonomy.TaxonomyParser` set up as `ilab taxonomy diff` does, with
`yamllint` on PATH (it runs it as a subprocess per linted file) and without `yq`.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.util
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO.parent / "shared" / "fixtures"
sys.path.insert(0, str(REPO))

from labdesk.taxonomy.upstream import upstream_check, yamllint_on_path  # noqa: E402
from labdesk.taxonomy.validate import check_file  # noqa: E402


def _load_corpus_helpers() -> Any:
    """The tests' corpus layout helper (this script's own name shadows the tests package)."""
    spec = importlib.util.spec_from_file_location("corpus", REPO / "tests/taxonomy/corpus.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["corpus"] = module
    spec.loader.exec_module(module)
    return module


corpus_helpers = _load_corpus_helpers()


def _time(label: str, corpus: list[Any], check: object) -> tuple[str, float, int]:
    started = time.perf_counter()
    invalid = sum(not check(f) for f in corpus)  # type: ignore[operator]
    return label, time.perf_counter() - started, invalid


def _ours(file: Any) -> bool:
    return check_file(file.path, root=file.root).valid


def _theirs(file: Any) -> bool:
    return upstream_check(file.path).valid


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--limit", type=int, default=0, help="only the first N files")
    args.add_argument("--profile", action="store_true", help="print where labdesk spends time")
    opts = args.parse_args()
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    assert yamllint_on_path(), "yamllint must be on PATH for a fair upstream measurement"
    workdir = Path(tempfile.mkdtemp(prefix="labdesk-bench-"))
    try:
        corpus = corpus_helpers.lay_out(FIXTURES, workdir)
        if opts.limit:
            corpus = corpus[: opts.limit]
        _ours(corpus[0])  # import and schema-load once, outside the timing, for both sides
        _theirs(corpus[0])
        rows = [
            _time("labdesk (in-process)", corpus, _ours),
            _time("upstream TaxonomyParser", corpus, _theirs),
        ]
        if opts.profile:
            profile = cProfile.Profile()
            profile.runcall(lambda: [_ours(f) for f in corpus])
            pstats.Stats(profile).sort_stats("tottime").print_stats(12)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{len(corpus)} real qna.yaml files, {os.cpu_count()} CPUs\n")
    print(f"{'validator':<26} {'seconds':>8} {'files/s':>9} {'invalid':>8}")
    for label, seconds, invalid in rows:
        print(f"{label:<26} {seconds:>8.2f} {len(corpus) / seconds:>9.1f} {invalid:>8}")
    print(f"\nlabdesk / upstream throughput: {rows[1][1] / rows[0][1]:.1f}x")


if __name__ == "__main__":
    main()
