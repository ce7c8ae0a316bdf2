"""A short in-app guide to the LAB flow and to the app's keys."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Markdown

from labdesk.tui.widgets import ModeBar

GUIDE = """\
# The LAB flow in labdesk

LAB (Large-scale Alignment for chatBots) teaches a model from a **taxonomy** of small examples:
a teacher model writes many training samples from your few, a judge keeps the good ones, and the
student model is tuned in phases so new knowledge does not wash out what it already knew.

1. **Taxonomy** (F2): each leaf is one `qna.yaml`.
   *Knowledge* leaves hold facts: a document outline, contexts from your documents and
   questions with answers. *Skills* show how to do something with question/answer examples
   (a *grounded* skill answers from a context). Every edit is checked live with InstructLab's
   own rules, so a leaf you make here can be sent upstream unchanged.
2. **Generate** (F3): the teacher writes samples for each leaf (changed leaves are preselected);
   the judge accepts or rejects each with a reason. Browse them and drop bad ones by hand.
3. **Train** (F4): LoRA tuning in three phases: short knowledge, long knowledge with replay,
   then skills with replay. The memory plan is shown before you start; a stopped run resumes.
4. **Chat** (F5): talk to the tuned model, or put it side by side with the base model.
5. **Models** (F6): what is downloaded and what the chosen recipe still needs.
6. **Run all** (F7): every step above in one go, then an evaluation of base against tuned;
   steps whose inputs did not change are skipped, and a stopped run resumes.

A **recipe** picks the teacher, judge and student and every setting; `demo` runs the whole
flow offline in minutes with tiny models (their text is nonsense, the pipeline is real).

## Keys

| key | does |
|---|---|
| F1 … F7 | guide, taxonomy, generate, train, chat, models, run all |
| F8 | pick or create the run every screen works on (the CLI's runs too) |
| ctrl+p | command palette: every screen and action by name |
| ctrl+s | save the leaf being edited |
| ctrl+n | new leaf from a template |
| ctrl+e | open the leaf in `$EDITOR` |
| alt+up / alt+down | move the seed being edited |
| ctrl+q | quit: unsaved edits are asked about; a stopped run resumes next time |
"""


class GuideScreen(Screen[None]):
    DEFAULT_CSS = """
    GuideScreen > VerticalScroll { padding: 1 4; }
    """

    def compose(self) -> ComposeResult:
        yield ModeBar("guide")
        with VerticalScroll():
            yield Markdown(GUIDE)
        yield Footer(compact=True)
