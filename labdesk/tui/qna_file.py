"""A `qna.yaml` as the leaf editor sees it: plain form values over a round-trip YAML document.

The editor edits `LeafForm` values; `QnaFile.apply` writes them back into the ruamel round-trip
tree so comments, key order, quoting and indentation the author chose survive a save, and an
untouched file saves byte for byte as it was read. New or changed multi-line text is written as a
literal block scalar (``|``), the way upstream taxonomy files are written.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString
from ruamel.yaml.util import load_yaml_guess_indent

from labdesk.errors import TaxonomyError
from labdesk.fileio import write_text

FieldPath = tuple[str | int, ...]
"""Where a value sits in the YAML, e.g. ``("seed_examples", 2, "answer")``."""


@dataclass
class QAForm:
    question: str = ""
    answer: str = ""


@dataclass
class SeedForm:
    """One seed. Skills hold one Q&A (and an optional context); knowledge a context and several."""

    context: str = ""
    qa: list[QAForm] = field(default_factory=lambda: [QAForm()])
    origin: int | None = field(default=None, compare=False)
    """Index of the seed in the file this form was read from (None for a new seed)."""


@dataclass
class LeafForm:
    knowledge: bool
    grounded: bool = False
    """A skill whose seeds carry a context (a grounded skill); a freeform skill has none."""
    version: int = 3
    created_by: str = ""
    description: str = ""
    """Skills: `task_description`; knowledge: `document_outline`."""
    domain: str = ""
    seeds: list[SeedForm] = field(default_factory=list)
    repo: str = ""
    commit: str = ""
    patterns: list[str] = field(default_factory=list)

    @property
    def description_key(self) -> str:
        return "document_outline" if self.knowledge else "task_description"

    def field_paths(self) -> list[FieldPath]:
        """Every editable value, in the order the editor shows them."""
        paths: list[FieldPath] = [("created_by",), (self.description_key,)]
        if self.knowledge:
            paths.append(("domain",))
        for i, seed in enumerate(self.seeds):
            if self.knowledge:
                paths.append(("seed_examples", i, "context"))
                for j in range(len(seed.qa)):
                    qa = ("seed_examples", i, "questions_and_answers", j)
                    paths += [(*qa, "question"), (*qa, "answer")]
            else:
                base = ("seed_examples", i)
                context = [(*base, "context")] if self.grounded else []
                paths += [*context, (*base, "question"), (*base, "answer")]
        if self.knowledge:
            paths += [("document", "repo"), ("document", "commit"), ("document", "patterns")]
        return paths

    def values(self) -> list[tuple[FieldPath, str]]:
        """Every editable value as it would be saved: a trailing newline (a literal block's
        own) makes no difference to the file."""
        return [(path, self.get(path).rstrip("\n")) for path in self.field_paths()]

    def get(self, path: FieldPath) -> str:
        """The text of one editable value (patterns: one per line)."""
        match path:
            case ("document", "patterns"):
                return "\n".join(self.patterns)
            case ("document", key):
                return str(getattr(self, str(key)))
            case ("seed_examples", int(i), "context"):
                return self.seeds[i].context
            case ("seed_examples", int(i), "questions_and_answers", int(j), key):
                return str(getattr(self.seeds[i].qa[j], str(key)))
            case ("seed_examples", int(i), key):
                return str(getattr(self.seeds[i].qa[0], str(key)))
            case (key,) if key == self.description_key:
                return self.description
            case (key,):
                return str(getattr(self, str(key)))
        raise KeyError(path)

    def set(self, path: FieldPath, value: str) -> None:
        match path:
            case ("document", "patterns"):
                self.patterns = [line.strip() for line in value.splitlines() if line.strip()]
            case ("document", key):
                setattr(self, str(key), value.strip())
            case ("seed_examples", int(i), "context"):
                self.seeds[i].context = value
            case ("seed_examples", int(i), "questions_and_answers", int(j), key):
                setattr(self.seeds[i].qa[j], str(key), value)
            case ("seed_examples", int(i), key):
                setattr(self.seeds[i].qa[0], str(key), value)
            case (key,) if key == self.description_key:
                self.description = value
            case (key,):
                setattr(self, str(key), value.strip())
            case _:
                raise KeyError(path)


def yq_path(path: FieldPath) -> str:
    """Upstream's yq-style form of a path: ``.seed_examples[2].answer``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path) or "."


def parse_yq(text: str) -> FieldPath:
    """The inverse of `yq_path` (``.`` is the root, an empty path)."""
    parts: list[str | int] = []
    for token in re.findall(r"\.([^.\[\]]+)|\[(\d+)\]", text):
        parts.append(token[0] if token[0] else int(token[1]))
    return tuple(parts)


def _yaml(mapping: int = 2, sequence: int = 4, offset: int = 2) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _styled(text: str) -> str:
    """How a new or edited value is written: multi-line text as a literal block, like upstream."""
    if "\n" in text.rstrip("\n"):
        return LiteralScalarString(text if text.endswith("\n") else text + "\n")
    return text.rstrip("\n")


def _set(node: CommentedMap, key: str, value: str) -> None:
    """Set `key` unless it already holds this text (an untouched value keeps its style)."""
    if key in node and _text(node[key]).rstrip("\n") == value.rstrip("\n"):
        return
    if not value and key not in node:
        return
    node[key] = _styled(value)


class QnaFile:
    """One `qna.yaml` held as a round-trip document."""

    def __init__(
        self,
        data: CommentedMap,
        *,
        knowledge: bool,
        indent: tuple[int, int],
        text: str | None = None,
    ) -> None:
        self.data = data
        self.knowledge = knowledge
        self._indent = indent
        """(sequence indent, dash offset), as ruamel's `YAML.indent` takes them."""
        self._text = text
        """The text read, written back as is while no value changed: ruamel re-flows some
        scalars (plain multi-line, long quoted), so only an edit may change the bytes."""

    @classmethod
    def parse(cls, text: str, *, knowledge: bool, where: str = "qna.yaml") -> QnaFile:
        try:
            data, sequence, offset = load_yaml_guess_indent(text, yaml=_yaml())
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            loc = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
            raise TaxonomyError(
                f"not valid YAML: {getattr(exc, 'problem', exc)}",
                where=loc,
                hint="fix the file in your editor (ctrl+e), then reload it",
            ) from None
        if data is None:
            data = CommentedMap()
        if not isinstance(data, CommentedMap):
            raise TaxonomyError(
                "a qna.yaml must be a mapping of fields", where=f"{where}:1:1", hint="see upstream"
            )
        # keep the author's list style: `- x` flush with its key, or indented `  - x` (upstream)
        return cls(data, knowledge=knowledge, indent=(sequence or 4, offset or 0), text=text)

    @classmethod
    def read(cls, path: Path, *, knowledge: bool) -> QnaFile:
        return cls.parse(path.read_text(encoding="utf-8"), knowledge=knowledge, where=str(path))

    # reading ------------------------------------------------------------------------------
    def form(self) -> LeafForm:
        d = self.data
        form = LeafForm(knowledge=self.knowledge)
        form.version = int(d.get("version") or 3) if str(d.get("version", "")).isdigit() else 3
        form.created_by = _text(d.get("created_by"))
        form.description = _text(d.get(form.description_key))
        form.domain = _text(d.get("domain"))
        seeds = d.get("seed_examples")
        for i, seed in enumerate(seeds if isinstance(seeds, list) else []):
            seed = seed if isinstance(seed, dict) else {}
            if self.knowledge:
                pairs = seed.get("questions_and_answers")
                qa = [
                    QAForm(_text(p.get("question")), _text(p.get("answer")))
                    for p in (pairs if isinstance(pairs, list) else [])
                    if isinstance(p, dict)
                ]
            else:
                qa = [QAForm(_text(seed.get("question")), _text(seed.get("answer")))]
            form.seeds.append(SeedForm(_text(seed.get("context")), qa, origin=i))
            form.grounded = form.grounded or (not self.knowledge and "context" in seed)
        doc = d.get("document")
        if isinstance(doc, dict):
            form.repo = _text(doc.get("repo"))
            form.commit = _text(doc.get("commit"))
            patterns = doc.get("patterns")
            form.patterns = [_text(p) for p in patterns] if isinstance(patterns, list) else []
        return form

    # writing ------------------------------------------------------------------------------
    def apply(self, form: LeafForm) -> None:
        """Write the form's values into the document, keeping everything the form does not own."""
        if form == self.form():
            return
        self._text = None
        d = self.data
        _set(d, "created_by", form.created_by)
        if form.knowledge:
            _set(d, "domain", form.domain)
        _set(d, form.description_key, form.description)
        d["seed_examples"] = self._seeds(form)
        if form.knowledge:
            doc = d.get("document")
            if not isinstance(doc, CommentedMap):
                doc = d["document"] = CommentedMap()
            _set(doc, "repo", form.repo)
            _set(doc, "commit", form.commit)
            old = doc.get("patterns")
            if not isinstance(old, list) or [_text(p) for p in old] != form.patterns:
                doc["patterns"] = CommentedSeq(form.patterns)

    def _seeds(self, form: LeafForm) -> CommentedSeq:
        old = self.data.get("seed_examples")
        old_items = list(old) if isinstance(old, list) else []
        origins = [s.origin for s in form.seeds]
        # Seeds kept in their order: update the sequence in place so its comments stay attached.
        seq = (
            old
            if isinstance(old, CommentedSeq)
            and origins[: len(old_items)] == list(range(len(old_items)))
            else CommentedSeq()
        )
        items = []
        for seed in form.seeds:
            origin = seed.origin
            node = old_items[origin] if origin is not None and origin < len(old_items) else None
            if not isinstance(node, CommentedMap):
                node = CommentedMap()
            items.append(self._seed(node, seed))
        if seq is old:
            del seq[len(items) :]
            for i, item in enumerate(items):
                if i < len(seq):
                    seq[i] = item
                else:
                    seq.append(item)
        else:
            seq.extend(items)
        for i, seed in enumerate(form.seeds):
            seed.origin = i
        return seq

    def _seed(self, node: CommentedMap, seed: SeedForm) -> CommentedMap:
        _set(node, "context", seed.context)
        if not self.knowledge:
            qa = seed.qa[0] if seed.qa else QAForm()
            _set(node, "question", qa.question)
            _set(node, "answer", qa.answer)
            return node
        old = node.get("questions_and_answers")
        old_pairs = list(old) if isinstance(old, list) else []
        pairs = CommentedSeq()
        for j, qa in enumerate(seed.qa):
            pair = old_pairs[j] if j < len(old_pairs) else None
            if not isinstance(pair, CommentedMap):
                pair = CommentedMap()
            _set(pair, "question", qa.question)
            _set(pair, "answer", qa.answer)
            pairs.append(pair)
        if isinstance(old, CommentedSeq) and len(old_pairs) == len(pairs):
            return node  # pairs were updated in place
        node["questions_and_answers"] = pairs
        return node

    def dump(self) -> str:
        if self._text is not None:
            return self._text
        sequence, offset = self._indent
        out = io.StringIO()
        _yaml(sequence=sequence, offset=offset).dump(self.data, out)
        return out.getvalue()

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename): a crash never leaves half a leaf."""
        write_text(path, self.dump())
