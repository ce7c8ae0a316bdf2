"""The three LAB pipelines as sequences of small named steps.

Knowledge: write Q&A from each document chunk in the style of the seed Q&A → the question must
stand alone → the answer must be faithful to the chunk → and relevant to the question; plus a
summary and the key facts of each chunk as extra training text. Freeform skill: new questions
like the seeds → judge the question → answer → judge the pair (1–3). Grounded skill: new
contexts like the seeds' → a question on each → an answer from the context only → a pair judge
that also fails unsupported answers.

A pipeline only describes the work; `labdesk.generate.leafrun` runs it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labdesk.generate import templates as t
from labdesk.generate.candidates import Candidate, SampleType, candidate_id, derive_seed
from labdesk.generate.filters import Blocklist, NearDuplicates, quality_problem
from labdesk.generate.steps import (
    Ask,
    Check,
    Step,
    require_score,
    require_yes,
    score_schema,
    store,
    strings,
    verdict_schema,
)
from labdesk.taxonomy.leaves import Leaf, Seed

if TYPE_CHECKING:
    from labdesk.documents import Chunk
    from labdesk.recipes import GenerateSettings

# Which templates turn an accepted candidate into the training sample's user message.
_TRAIN_TEMPLATES: dict[SampleType, str] = {
    "summary": "train_summary",
    "key_facts": "train_key_facts",
}


@dataclass
class Memory:
    """What the duplicate checks compare against: the seeds, accepted samples, this round's."""

    questions: NearDuplicates
    contexts: NearDuplicates
    samples: NearDuplicates

    @classmethod
    def empty(cls, threshold: float) -> Memory:
        return cls(*(NearDuplicates(threshold) for _ in range(3)))


@dataclass
class _Shared:
    """What the step closures read: the leaf, the settings, the blocklist and the memory."""

    leaf: Leaf
    settings: GenerateSettings
    blocklist: Blocklist
    memory: Memory


@dataclass(frozen=True)
class Pipeline:
    leaf: Leaf
    seeds: list[Seed]
    """The seeds the teacher may see (held-out ones are not here)."""
    chunks: list[Chunk]
    settings: GenerateSettings
    steps: tuple[Step, ...]
    _shared: _Shared

    def candidates(self, round_: int, count: int) -> list[Candidate]:
        """Round `round_`'s candidates: `count` Q&A ones (+ chunk augmentations in round 0)."""
        slug = self.leaf.slug
        # One draw of examples per round, shared by the round's candidates: their prompts then
        # share a long prefix the engine computes once for the whole batch. Rounds differ.
        rng = random.Random(derive_seed(self.settings.seed, slug, round_, "examples"))
        examples = rng.sample(self.seeds, min(self.settings.examples_per_prompt, len(self.seeds)))
        made = []
        for index in range(count):
            chunk = (
                self.chunks[(index + round_ * count) % len(self.chunks)] if self.chunks else None
            )
            made.append(
                Candidate(
                    candidate_id(slug, round_, index, "qa"),
                    round_,
                    index,
                    "qa",
                    examples,
                    chunk,
                )
            )
        if round_ == 0 and self.leaf.kind == "knowledge":
            for type_ in self.settings.augmentations:
                for number, chunk in enumerate(self.chunks):
                    made.append(
                        Candidate(
                            candidate_id(slug, 0, number, type_), 0, len(made), type_, [], chunk
                        )
                    )
        return made

    def user_message(self, candidate: Candidate) -> str:
        """The training sample's user turn."""
        if candidate.type in _TRAIN_TEMPLATES:
            assert candidate.chunk is not None
            return t.render(
                _TRAIN_TEMPLATES[candidate.type],
                outline=self.leaf.task_description,
                chunk=candidate.chunk.text,
            )
        question = candidate.fields.get("question", "")
        if self.leaf.kind == "grounded_skill":
            context = candidate.fields.get("context", "")
            return t.render("train_grounded", context=context, question=question)
        return question

    def start_round(self, accepted: list[dict[str, Any]]) -> None:
        """Fresh duplicate memory: the seeds, then the accepted records in their order."""
        memory = Memory.empty(self.settings.dedup_threshold)
        for n, seed in enumerate(self.seeds, 1):
            if seed.context and self.leaf.kind == "grounded_skill":
                memory.contexts.add(f"seed {n}", seed.context)
            for m, qa in enumerate(seed.qa, 1):
                user = qa.question
                if self.leaf.kind == "grounded_skill" and seed.context:
                    user = t.render("train_grounded", context=seed.context, question=qa.question)
                memory.questions.add(f"seed {n}", qa.question)
                memory.samples.add(f"seed {n}.{m}", dedup_text("qa", user, qa.answer))
        for record in accepted:
            meta = record["metadata"]
            user, answer = record["messages"][1]["content"], record["messages"][2]["content"]
            if meta["type"] == "qa" and self.leaf.kind != "grounded_skill":
                memory.questions.add(meta["id"], user)
            if meta.get("context") and self.leaf.kind == "grounded_skill":
                memory.contexts.add(meta["id"], meta["context"])
            memory.samples.add(meta["id"], dedup_text(meta["type"], user, answer))
        self._shared.memory = memory

    def duplicate_of(self, candidate: Candidate) -> tuple[str, float] | None:
        """The seed or accepted sample this finished candidate nearly repeats, if any."""
        text = dedup_text(candidate.type, self.user_message(candidate), candidate.fields["answer"])
        return self._shared.memory.samples.match(text)

    def remember(self, candidate: Candidate) -> None:
        text = dedup_text(candidate.type, self.user_message(candidate), candidate.fields["answer"])
        self._shared.memory.samples.add(candidate.id, text)


def dedup_text(type_: str, user: str, answer: str) -> str:
    # Augmentations share their user turn (the chunk) with each other: compare the answer only.
    return f"{user}\n{answer}" if type_ == "qa" else f"{type_}: {answer}"


def build_pipeline(
    leaf: Leaf, seeds: list[Seed], chunks: list[Chunk], settings: GenerateSettings
) -> Pipeline:
    shared = _Shared(
        leaf, settings, Blocklist(settings.blocklist), Memory.empty(settings.dedup_threshold)
    )
    builders = {
        "knowledge": _knowledge_steps,
        "freeform_skill": _freeform_steps,
        "grounded_skill": _grounded_steps,
    }
    return Pipeline(leaf, seeds, chunks, settings, builders[leaf.kind](shared), shared)


# -- step helpers shared by the pipelines ---------------------------------------------------


def _filter(
    name: str,
    field: str,
    shared: _Shared,
    *,
    min_words: int = 2,
    types: frozenset[SampleType] = frozenset({"qa"}),
) -> Check:
    """Quality and blocklist check of one written field."""

    def run(candidate: Candidate) -> str | None:
        text = candidate.fields.get(field, "")
        echoes = [candidate.fields.get("question", "")] if field == "answer" else []
        echoes += [qa.question for seed in candidate.examples for qa in seed.qa]
        problem = quality_problem(text, min_words=min_words, echo_of=echoes)
        if problem:
            return f"{field} {problem}"
        blocked = shared.blocklist.find(text)
        return f"{field} contains blocked phrase '{blocked}'" if blocked else None

    return Check(name, run, types)


def _dedup(
    name: str, field: str, index: Callable[[Memory], NearDuplicates], shared: _Shared
) -> Check:
    """Drop a candidate whose `field` nearly repeats a seed's, an accepted or an earlier one's."""

    def run(candidate: Candidate) -> str | None:
        texts = index(shared.memory)
        match = texts.match(candidate.fields[field])
        if match:
            return f"{field} near-duplicate of {match[0]} (similarity {match[1]:.2f})"
        texts.add(candidate.id, candidate.fields[field])
        return None

    return Check(name, run, frozenset({"qa"}))


def _dedup_questions(shared: _Shared) -> Check:
    return _dedup("dedup_question", "question", lambda m: m.questions, shared)


def _dedup_contexts(shared: _Shared) -> Check:
    return _dedup("dedup_context", "context", lambda m: m.contexts, shared)


def _task(shared: _Shared) -> str:
    return shared.leaf.task_description


def _context_block(candidate: Candidate) -> str:
    context = candidate.fields.get("context")
    return f"\nThe source text:\n<context>\n{context}\n</context>\n" if context else ""


# -- knowledge ------------------------------------------------------------------------------


def _knowledge_steps(shared: _Shared) -> tuple[Step, ...]:
    def chunk_vars(candidate: Candidate) -> dict[str, str]:
        assert candidate.chunk is not None
        return {"outline": shared.leaf.task_description, "chunk": candidate.chunk.text}

    def qa_vars(candidate: Candidate) -> dict[str, str]:
        return {"question": candidate.fields["question"], "answer": candidate.fields["answer"]}

    def faithful_vars(candidate: Candidate) -> dict[str, str]:
        return {**chunk_vars(candidate), "answer": candidate.fields["answer"]}

    augmented = frozenset(shared.settings.augmentations)
    return (
        Ask(
            "write_qa",
            "teacher",
            {"qa": "knowledge_qa"},
            lambda budget: strings(budget, question=0.3, answer=0.7),
            chunk_vars,
            store("question", "answer"),
            examples=t.show_knowledge,
        ),
        Ask(
            "write_augmentation",
            "teacher",
            {"summary": "knowledge_summary", "key_facts": "knowledge_key_facts"},
            lambda budget: strings(budget, text=1.0),
            chunk_vars,
            store("text", into={"text": "answer"}),
        ),
        _filter("filter_question", "question", shared),
        _filter(
            "filter_answer", "answer", shared, min_words=1, types=frozenset({"qa", *augmented})
        ),
        _dedup_questions(shared),
        Ask(
            "judge_standalone",
            "judge",
            {"qa": "judge_standalone"},
            verdict_schema,
            lambda c: {"question": c.fields["question"]},
            require_yes("standalone"),
        ),
        Ask(
            "judge_faithfulness",
            "judge",
            dict.fromkeys(("qa", *augmented), "judge_faithfulness"),
            verdict_schema,
            faithful_vars,
            require_yes("faithful"),
        ),
        Ask(
            "judge_relevance",
            "judge",
            {"qa": "judge_relevance"},
            verdict_schema,
            qa_vars,
            require_yes("relevant"),
        ),
    )


# -- skills ---------------------------------------------------------------------------------


def _judge_question(shared: _Shared) -> Ask:
    return Ask(
        "judge_question",
        "judge",
        {"qa": "judge_question"},
        verdict_schema,
        lambda c: {
            "task": _task(shared),
            "question": c.fields["question"],
            "context_block": _context_block(c),
        },
        require_yes("good_question"),
    )


def _judge_pair(shared: _Shared) -> Ask:
    return Ask(
        "judge_pair",
        "judge",
        {"qa": "judge_pair"},
        score_schema,
        lambda c: {
            "task": _task(shared),
            "question": c.fields["question"],
            "answer": c.fields["answer"],
            "context_block": _context_block(c),
        },
        require_score("pair_score", shared.settings.min_pair_score),
    )


def _freeform_steps(shared: _Shared) -> tuple[Step, ...]:
    return (
        Ask(
            "write_question",
            "teacher",
            {"qa": "skill_question"},
            lambda budget: strings(budget, question=1.0),
            lambda c: {"task": _task(shared)},
            store("question"),
            examples=t.show_questions,
        ),
        _filter("filter_question", "question", shared),
        _dedup_questions(shared),
        _judge_question(shared),
        Ask(
            "write_answer",
            "teacher",
            {"qa": "skill_answer"},
            lambda budget: strings(budget, answer=1.0),
            lambda c: {"task": _task(shared), "question": c.fields["question"]},
            store("answer"),
            examples=t.show_pairs,
        ),
        _filter("filter_answer", "answer", shared, min_words=1),
        _judge_pair(shared),
    )


def _grounded_steps(shared: _Shared) -> tuple[Step, ...]:
    return (
        Ask(
            "write_context",
            "teacher",
            {"qa": "grounded_context"},
            lambda budget: strings(budget, context=1.0),
            lambda c: {"task": _task(shared)},
            store("context"),
            examples=t.show_contexts,
        ),
        _filter("filter_context", "context", shared, min_words=4),
        _dedup_contexts(shared),
        Ask(
            "write_question",
            "teacher",
            {"qa": "grounded_question"},
            lambda budget: strings(budget, question=1.0),
            lambda c: {"task": _task(shared), "context": c.fields["context"]},
            store("question"),
            examples=t.show_context_questions,
        ),
        _filter("filter_question", "question", shared),
        _judge_question(shared),
        Ask(
            "write_answer",
            "teacher",
            {"qa": "grounded_answer"},
            lambda budget: strings(budget, answer=1.0),
            lambda c: {
                "task": _task(shared),
                "question": c.fields["question"],
                "context": c.fields["context"],
            },
            store("answer"),
            examples=t.show_pairs,
        ),
        _filter("filter_answer", "answer", shared, min_words=1),
        _judge_pair(shared),
    )
