"""The leaf editor: a form over one `qna.yaml`, validated live with upstream's own checks.

Every keystroke updates the form; a moment later the form is written into the round-trip YAML
document and checked with `labdesk.taxonomy.validate_text` in a worker, and each problem is shown
under the field its YAML path points at. Saving writes the same document atomically.

Nothing is lost without a question: removing a seed that has text asks first; the seed buttons
(↑ ↓ ✕) are left out of the Tab path, so typing never presses them; and the editor remembers the
file's text as it read it, so a file changed on disk since is never overwritten silently.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Static, TextArea

from labdesk.tui.qna_file import FieldPath, LeafForm, QAForm, QnaFile, SeedForm, parse_yq
from labdesk.tui.widgets import Question
from labdesk.tui.work import notify_error

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from labdesk.taxonomy import Problem

MISSING_KEY = re.compile(r"^(\w+) is missing$")
"""How a missing key is worded (`labdesk.taxonomy.wording`): it belongs at that key's field."""
VALIDATE_DELAY_S = 0.3
"""Validation waits for a pause in typing, so a fast typist never waits for it."""


def field_id(path: FieldPath) -> str:
    return "f-" + "-".join(str(part) for part in path)


def words(text: str) -> int:
    return len(text.split())


def problem_markup(problems: list[Problem]) -> str:
    lines = []
    for p in problems:
        colour, mark = ("red", "✗") if p.severity == "error" else ("yellow", "!")
        lines.append(f"[{colour}]{mark} {escape(p.message)}[/]")
    return "\n".join(lines)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class FieldBox(Vertical):
    """One value: its title with a word count, the input, and the problems found in it."""

    DEFAULT_CSS = """
    FieldBox { height: auto; margin: 0 0 1 0; }
    FieldBox > .field-title { color: $text-muted; }
    FieldBox.-error > .field-title { color: $error; }
    FieldBox > TextArea { height: auto; min-height: 3; max-height: 12; }
    FieldBox.-error > TextArea, FieldBox.-error > Input { border: tall $error; }
    FieldBox > .field-problems { display: none; padding: 0 1; }
    FieldBox.-problems > .field-problems { display: block; }
    """

    def __init__(
        self,
        path: FieldPath,
        title: str,
        value: str,
        *,
        multiline: bool,
        word_limit: int | None = None,
        placeholder: str = "",
    ) -> None:
        super().__init__(id="box" + field_id(path)[1:])
        self.path = path
        self.title = title
        self.word_limit = word_limit
        self._value = value
        self._multiline = multiline
        self._placeholder = placeholder

    def compose(self) -> ComposeResult:
        yield Label(self._title_text(self._value), classes="field-title")
        if self._multiline:
            area = TextArea(self._value, id=field_id(self.path), soft_wrap=True)
            area.show_line_numbers = False
            area.placeholder = self._placeholder
            yield area
        else:
            yield Input(self._value, id=field_id(self.path), placeholder=self._placeholder)
        yield Static("", classes="field-problems")

    @property
    def value(self) -> str:
        widgets = list(self.query(f"#{field_id(self.path)}"))
        if not widgets:  # not composed yet: the value it was made with
            return self._value
        widget = widgets[0]
        return widget.text if isinstance(widget, TextArea) else str(getattr(widget, "value", ""))

    def _title_text(self, value: str) -> str:
        n = words(value)
        if self.word_limit is None:
            return f"{self.title} · {n} words" if self._multiline and n else self.title
        over = n > self.word_limit
        count = f"{n}/{self.word_limit} words"
        return f"{self.title} · " + (f"[red]{count}[/]" if over else count)

    def refresh_hint(self) -> None:
        self.query_one(".field-title", Label).update(self._title_text(self.value))

    def show_problems(self, problems: list[Problem]) -> None:
        self.set_class(any(p.severity == "error" for p in problems), "-error")
        self.set_class(bool(problems), "-problems")
        for shown in self.query(".field-problems").results(Static):  # none while recomposing
            shown.update(problem_markup(problems))


class LeafEditor(VerticalScroll):
    """Edits one leaf; posts `Validated` after each check, `Saved` after each save and `Dirty`
    when it gains or loses unsaved edits."""

    DEFAULT_CSS = """
    LeafEditor { padding: 0 1; }
    LeafEditor > #summary { height: auto; padding: 0 1; margin-bottom: 1; border: round $panel; }
    LeafEditor > #summary.-error { border: round $error; }
    LeafEditor > #summary.-clean { border: round $success; }
    LeafEditor .seed { height: auto; border: round $panel; padding: 0 1; margin-bottom: 1; }
    LeafEditor .seed-head { height: 1; }
    LeafEditor .seed-head > Label { width: 1fr; text-style: bold; }
    LeafEditor .seed-head > Button, LeafEditor .qa-head > Button {
        min-width: 5; height: 1; border: none; margin-left: 1;
    }
    LeafEditor .qa-head { height: 1; }
    LeafEditor .qa-head > Label { width: 1fr; color: $text-muted; }
    LeafEditor .section { text-style: bold; color: $accent; margin-top: 1; }
    LeafEditor #add-seed { margin-bottom: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("alt+up", "move_seed(-1)", "Seed up", show=False),
        Binding("alt+down", "move_seed(1)", "Seed down", show=False),
    ]

    class Validated(Message):
        def __init__(self, editor: LeafEditor, problems: list[Problem]) -> None:
            super().__init__()
            self.editor = editor
            self.problems = problems

    class Saved(Message):
        def __init__(self, editor: LeafEditor) -> None:
            super().__init__()
            self.editor = editor

    class Dirty(Message):
        def __init__(self, editor: LeafEditor) -> None:
            super().__init__()
            self.editor = editor

    def __init__(self, file: Path, rel: str, qna: QnaFile, disk_text: str) -> None:
        super().__init__()
        self.file = file
        self.rel = rel
        """Path relative to the taxonomy root: upstream's rules depend on it."""
        self.qna = qna
        """The working document: checks write the form into it, so it is not what was saved."""
        self.form: LeafForm = qna.form()
        self.saved: LeafForm = qna.form()
        """The form as the file holds it: unsaved edits are what differs from it."""
        self.disk_text: str | None = disk_text
        """The file's text as last read or written here: a different text on disk means
        someone else changed the file since."""
        self.problems: list[Problem] = []
        self.dirty = False
        self._timer: Timer | None = None
        self._rebuilding = False
        """While the form is redrawn its inputs are stale: nothing is read back from them."""
        self._checks = 0
        """Number of the latest check: a slower, older check never overwrites a newer one."""

    # layout --------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        from labdesk.taxonomy.advice import CONTEXT_WORDS, QA_WORDS

        form = self.form
        yield Static(self._summary_head(), id="summary")
        yield FieldBox(
            ("created_by",), "created_by (your GitHub name)", form.created_by, multiline=False
        )
        outline = "document_outline" if form.knowledge else "task_description"
        yield FieldBox((outline,), outline, form.description, multiline=True)
        if form.knowledge:
            yield FieldBox(("domain",), "domain", form.domain, multiline=False)
        yield Label("Seed examples", classes="section")
        for i, seed in enumerate(form.seeds):
            with Vertical(classes="seed", id=f"seed-{i}"):
                with Horizontal(classes="seed-head"):
                    yield Label(f"Seed {i + 1} of {len(form.seeds)}")
                    yield _button("↑", f"up-{i}", "Move this seed up (alt+up)")
                    yield _button("↓", f"down-{i}", "Move this seed down (alt+down)")
                    yield _button("✕", f"del-{i}", "Remove this seed (asks first)")
                base: FieldPath = ("seed_examples", i)
                if form.knowledge:
                    yield FieldBox(
                        (*base, "context"), "context", seed.context,
                        multiline=True, word_limit=CONTEXT_WORDS,
                    )  # fmt: skip
                    for j, qa in enumerate(seed.qa):
                        pair: FieldPath = (*base, "questions_and_answers", j)
                        with Horizontal(classes="qa-head"):
                            yield Label(f"Q&A {j + 1}")
                            yield _button("✕", f"delqa-{i}-{j}", "Remove this pair (asks first)")
                        yield FieldBox((*pair, "question"), "question", qa.question, multiline=True)
                        yield FieldBox(
                            (*pair, "answer"), "answer", qa.answer,
                            multiline=True, word_limit=QA_WORDS,
                        )  # fmt: skip
                    yield Button("+ Q&A", id=f"addqa-{i}")
                else:
                    qa = seed.qa[0]
                    if form.grounded:  # a freeform skill has no context: no field for one
                        yield FieldBox((*base, "context"), "context", seed.context, multiline=True)
                    yield FieldBox((*base, "question"), "question", qa.question, multiline=True)
                    yield FieldBox((*base, "answer"), "answer", qa.answer, multiline=True)
        yield Button("+ seed example", id="add-seed", variant="primary")
        if form.knowledge:
            yield Label("Document", classes="section")
            yield FieldBox(
                ("document", "repo"), "repo (git URL or local path)", form.repo, multiline=False
            )
            yield FieldBox(("document", "commit"), "commit", form.commit, multiline=False)
            yield FieldBox(
                ("document", "patterns"), "patterns (one glob per line)",
                "\n".join(form.patterns), multiline=True,
            )  # fmt: skip

    def on_mount(self) -> None:
        self.validate_now()

    def focus_first(self) -> None:
        """Put the cursor in the first field (a new leaf: typing starts at once)."""
        boxes = list(self.query(FieldBox))
        empty = next((box for box in boxes if not box.value.strip()), boxes[0] if boxes else None)
        if empty is not None:
            empty.query_one(f"#{field_id(empty.path)}").focus()

    # editing -------------------------------------------------------------------------------
    def sync(self) -> None:
        """Read every input back into the form (before a restructure, a check or a save)."""
        if self._rebuilding:
            return
        for box in self.query(FieldBox):
            self.form.set(box.path, box.value)

    def _update_dirty(self) -> None:
        dirty = self.form.values() != self.saved.values()
        if dirty != self.dirty:
            self.dirty = dirty
            self._paint_summary()
            self.post_message(self.Dirty(self))

    @on(TextArea.Changed)
    @on(Input.Changed)
    def _edited(self, event: TextArea.Changed | Input.Changed) -> None:
        box = event.control.parent
        if not isinstance(box, FieldBox) or self._rebuilding:
            return
        event.stop()
        box.refresh_hint()
        self.form.set(box.path, box.value)
        self._update_dirty()
        self._schedule_validation()

    def _schedule_validation(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_DELAY_S, self.validate_now)

    async def restructure(self, change: str, i: int, j: int = 0) -> None:
        """Add, remove or move seeds and pairs, then redraw the form."""
        self.sync()
        seeds = self.form.seeds
        if change == "add-seed":
            qa = [QAForm() for _ in range(3)] if self.form.knowledge else [QAForm()]
            seeds.append(SeedForm(qa=qa))
        elif change == "del" and seeds:
            del seeds[i]
        elif change == "up" and i > 0:
            seeds[i - 1], seeds[i] = seeds[i], seeds[i - 1]
        elif change == "down" and i + 1 < len(seeds):
            seeds[i + 1], seeds[i] = seeds[i], seeds[i + 1]
        elif change == "addqa":
            seeds[i].qa.append(QAForm())
        elif change == "delqa" and len(seeds[i].qa) > 1:
            del seeds[i].qa[j]
        else:
            return
        self._rebuilding = True
        try:
            await self.recompose()
        finally:
            self._rebuilding = False
        self._update_dirty()
        self.validate_now()

    @on(Button.Pressed)
    async def _button(self, event: Button.Pressed) -> None:
        if event.button.id == "add-seed":
            event.stop()
            await self.restructure("add-seed", 0)
            return
        change, _, rest = (event.button.id or "").partition("-")
        if change not in ("up", "down", "del", "addqa", "delqa"):
            return
        event.stop()
        parts = [int(n) for n in rest.split("-")]
        if change in ("del", "delqa"):
            self.sync()
            self._ask_removal(change, *parts)
        else:
            await self.restructure(change, *parts)

    def _ask_removal(self, change: str, i: int, j: int = 0) -> None:
        """Removing what holds text asks first; an empty seed or pair just goes."""
        seed = self.form.seeds[i]
        pairs = seed.qa if change == "del" else seed.qa[j : j + 1]
        texts = [seed.context if change == "del" else ""]
        texts += [t for qa in pairs for t in (qa.question, qa.answer)]
        if not any(t.strip() for t in texts):
            self.run_worker(self.restructure(change, i, j))
            return
        what = f"seed {i + 1}" if change == "del" else f"Q&A {j + 1} of seed {i + 1}"
        first = next(t for t in texts if t.strip())
        preview = " ".join(first.split())
        preview = preview[:70] + ("…" if len(preview) > 70 else "")
        question = Question(
            f"Remove {what}?\n[dim]{escape(preview)}[/]",
            [("remove", f"Remove {what}"), ("keep", "Keep it")],
        )

        async def answered(answer: str | None) -> None:
            if answer == "remove":
                await self.restructure(change, i, j)

        self.app.push_screen(question, answered)

    def _focused_seed(self) -> int | None:
        node: DOMNode | None = self.screen.focused
        while node is not None and node is not self:
            if node.id and node.id.startswith("seed-"):
                return int(node.id.removeprefix("seed-"))
            node = node.parent
        return None

    async def action_move_seed(self, delta: int) -> None:
        """Move the seed holding the cursor; the cursor goes with it."""
        i = self._focused_seed()
        focused = self.screen.focused
        if i is None or focused is None or not (0 <= i + delta < len(self.form.seeds)):
            return
        where = (focused.id or "").replace(f"seed_examples-{i}-", f"seed_examples-{i + delta}-")
        await self.restructure("up" if delta < 0 else "down", i)
        for widget in self.query(f"#{where}"):
            widget.focus()

    # disk ------------------------------------------------------------------------------------
    def read_disk(self) -> str | None:
        try:
            return self.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def changed_on_disk(self) -> bool:
        """Someone changed (or removed) the file since it was read or saved here."""
        return self.read_disk() != self.disk_text

    # checking and saving -------------------------------------------------------------------
    def current_text(self) -> str:
        self.qna.apply(self.form)
        return self.qna.dump()

    def validate_now(self) -> None:
        self._timer = None
        self.sync()
        self._checks += 1
        self._validate(self.current_text(), self._checks)

    @work(thread=True, exclusive=True, group="validate")
    def _validate(self, text: str, number: int) -> None:
        from labdesk.taxonomy import validate_text

        try:
            problems = validate_text(text, self.rel)
        except Exception as exc:  # a checker crash must not take the editor down
            notify_error(self.app, exc)
            return
        self.app.call_from_thread(self.show_problems, problems, number)

    def _summary_head(self) -> str:
        kind = "knowledge" if self.form.knowledge else "skill"
        unsaved = "[b yellow]● unsaved[/] · " if self.dirty else ""
        head = f"{unsaved}[b]{escape(self.rel)}[/b] · {kind}"
        if not self.problems:
            return head + (" · [green]✓ valid by upstream's rules[/]" if self._checks else "")
        errors = sum(p.severity == "error" for p in self.problems)
        warnings = len(self.problems) - errors
        return head + f" · [red]✗ {errors} error(s)[/] · [yellow]! {warnings} warning(s)[/]"

    def _paint_summary(self, loose: list[Problem] | None = None) -> None:
        for summary in self.query("#summary").results(Static):
            extra = ("\n" + problem_markup(loose)) if loose else ""
            summary.update(self._summary_head() + extra)

    def show_problems(self, problems: list[Problem], number: int | None = None) -> None:
        if number is not None and number != self._checks:
            return  # a newer check is on its way
        self.problems = problems
        summaries = list(self.query("#summary").results(Static))
        if not self.is_attached or not summaries:
            return  # the form is being rebuilt; it is checked again once it is
        boxes = {box.path: box for box in self.query(FieldBox)}
        placed: dict[FieldPath, list[Problem]] = {path: [] for path in boxes}
        loose: list[Problem] = []
        for problem in problems:
            path = parse_yq(problem.yaml_path)
            if missing := MISSING_KEY.search(problem.message):  # the field it asks for
                path = (*path, missing.group(1))
            target = self._field_for(path, list(boxes))
            (placed[target] if target else loose).append(problem)
        for path, box in boxes.items():
            box.show_problems(placed[path])
        errors = sum(p.severity == "error" for p in problems)
        self._paint_summary(loose)
        summaries[0].set_class(errors > 0, "-error")
        summaries[0].set_class(not problems, "-clean")
        self.post_message(self.Validated(self, problems))

    @staticmethod
    def _field_for(path: FieldPath, fields: list[FieldPath]) -> FieldPath | None:
        """The field a problem belongs to: the deepest field on its path, else the first
        field inside it (a missing key inside seed 3 lands on seed 3's first field)."""
        if not path:
            return None
        on_path = [f for f in fields if path[: len(f)] == f]
        if on_path:
            return max(on_path, key=len)
        if len(path) >= 2:
            inside = [f for f in fields if f[: len(path)] == path]
            if inside:
                return inside[0]
        return None

    def action_save(self) -> None:
        """Save; when the file changed on disk since it was read, ask before overwriting."""
        if not self.changed_on_disk():
            self.save()
            return
        question = Question(
            f"[b]{escape(self.rel)}[/b] changed on disk since it was opened here.\n"
            "Overwrite it with this form, or reload it from disk (dropping the form's edits)?",
            [("overwrite", "Overwrite"), ("reload", "Reload from disk"), ("cancel", "Cancel")],
            focus="cancel",
        )

        def answered(answer: str | None) -> None:
            if answer == "overwrite":
                self.save()
            elif answer == "reload":
                self.post_message(self.ReloadRequested(self))

        self.app.push_screen(question, answered)

    class ReloadRequested(Message):
        def __init__(self, editor: LeafEditor) -> None:
            super().__init__()
            self.editor = editor

    def save(self) -> bool:
        """Write the form now (atomically); False when the write failed."""
        self.sync()
        try:
            text = self.current_text()
            self.qna.save(self.file)
        except OSError as exc:
            notify_error(self.app, exc)
            return False
        self.disk_text = text
        self.saved = QnaFile.parse(text, knowledge=self.form.knowledge).form()
        self._update_dirty()
        errors = sum(p.severity == "error" for p in self.problems)
        note = f" with {errors} error(s) left to fix" if errors else ""
        self.notify(f"saved {self.rel}{note}", severity="warning" if errors else "information")
        self.post_message(self.Saved(self))
        self.validate_now()
        return True


def _button(label: str, id: str, tooltip: str) -> Button:
    """A small seed button the mouse presses and Tab passes by: typing into a focused ✕
    would remove a seed."""
    button = Button(label, id=id, compact=True, tooltip=tooltip)
    button.can_focus = False
    return button
