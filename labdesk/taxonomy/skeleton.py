"""`new_leaf`: a qna.yaml skeleton that upstream accepts once its empty strings are filled in.

The blanks are deliberately empty (`""`): the schema requires non-empty strings, so an unfilled
skeleton fails validation instead of slipping through with placeholder text.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from labdesk.errors import TaxonomyError
from labdesk.fileio import write_text
from labdesk.taxonomy.advice import ATTRIBUTION_FILE
from labdesk.taxonomy.leaves import LeafKind
from labdesk.taxonomy.validate import LEAF_FILE

KINDS: tuple[LeafKind, ...] = ("knowledge", "freeform_skill", "grounded_skill")
SKILL_SEEDS = 5
KNOWLEDGE_SEEDS = 5
KNOWLEDGE_QAS = 3

_ATTRIBUTION = """Title of work:
Link to work:
Revision:
License of the work:
Creator names:
"""


def new_leaf(kind: str, path: str, root: Path) -> Path:
    """Write `<root>/<path>/qna.yaml` (plus attribution.txt) for a new leaf; returns the file.

    `path` is the leaf folder; its top folder (``knowledge`` or ``compositional_skills``) is
    added when missing.
    """
    if kind not in KINDS:
        raise TaxonomyError(f"unknown leaf kind '{kind}'", hint=f"use one of {', '.join(KINDS)}")
    top = "knowledge" if kind == "knowledge" else "compositional_skills"
    parts = PurePosixPath(path.strip("/")).parts
    if not parts or ".." in parts:
        raise TaxonomyError(f"'{path}' is not a leaf folder inside the taxonomy")
    if parts[-1] in (LEAF_FILE, "qna.yml"):
        parts = parts[:-1]
    if parts[0] != top:
        if parts[0] in ("knowledge", "compositional_skills"):
            raise TaxonomyError(f"a {kind} leaf belongs under {top}/, not {parts[0]}/", where=path)
        parts = (top, *parts)
    folder = Path(root).joinpath(*parts)
    file = folder / LEAF_FILE
    if file.exists():
        raise TaxonomyError("a leaf already exists here", where=str(file))
    folder.mkdir(parents=True, exist_ok=True)
    write_text(file, _knowledge() if kind == "knowledge" else _skill(kind == "grounded_skill"))
    if not (folder / ATTRIBUTION_FILE).exists():
        write_text(folder / ATTRIBUTION_FILE, _ATTRIBUTION)
    return file


def _skill(grounded: bool) -> str:
    lines = [
        "version: 3",
        'created_by: ""  # your GitHub user name',
        'task_description: ""  # what the skill does, for the teacher model',
        f"seed_examples:  # at least {SKILL_SEEDS}, all different",
    ]
    for _ in range(SKILL_SEEDS):
        if grounded:
            lines.append('  - context: ""  # the text the question is about')
            lines.append('    question: ""')
        else:
            lines.append('  - question: ""')
        lines.append('    answer: ""')
    return "\n".join(lines) + "\n"


def _knowledge() -> str:
    lines = [
        "version: 3",
        'created_by: ""  # your GitHub user name',
        'domain: ""  # brief, like a textbook chapter title',
        'document_outline: ""  # a one-line summary of the documents',
        f"seed_examples:  # at least {KNOWLEDGE_SEEDS} contexts from the documents",
    ]
    for _ in range(KNOWLEDGE_SEEDS):
        lines.append('  - context: ""  # a passage of at most 500 words')
        lines.append(f"    questions_and_answers:  # at least {KNOWLEDGE_QAS}")
        for _ in range(KNOWLEDGE_QAS):
            lines.append('      - question: ""')
            lines.append('        answer: ""')
    lines += [
        "document:",
        '  repo: ""  # git URL of the documents',
        '  commit: ""  # the commit to use',
        "  patterns:",
        '    - ""  # e.g. *.md',
    ]
    return "\n".join(lines) + "\n"
