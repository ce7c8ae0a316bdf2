"""The three LAB pipelines as sequences of small named steps.

Knowledge: the documents are cut into facts (sentences, with the headings they sit under); for
each fact the teacher writes questions in the style of the seed Q&A (several per fact, each
candidate its own draw of seeds, so the fact comes in more than one wording), each asking for
one of the fact's names or numbers and opened for the teacher ("In which year", "How many"), a
form a small model completes well; the fact itself is the answer. Judges keep questions that
stand alone, that the judge model, answering from the whole chunk, answers from their own fact
(a round trip: a loosely worded question draws on a neighbouring sentence), and whose fact
answers them better than the facts their words point at. Each chunk also gets a summary, learnt
whole, and each fact a cloze question per name or number it holds, asked by rule
(`labdesk.generate.cloze`); the shown seeds' own Q&A become samples as they are. Freeform
skill: new requests like the seeds → a response, with the seeds as earlier turns of the
conversation → judged on task, finished, not copied. Grounded skill: new source texts
like the seeds' → a request on each → a response from the text → the same judges, plus grounded.

A pipeline only describes the work; `labdesk.generate.leafrun` runs it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from labdesk.documents.facts import chunk_facts, closest_fact, rival_facts
from labdesk.generate import templates as t
from labdesk.generate.candidates import (
    GIVEN_TYPES,
    Candidate,
    SampleType,
    candidate_id,
    derive_seed,
)
from labdesk.generate.cloze import cloze_questions, word_counts
from labdesk.generate.filters import Blocklist, NearDuplicates, quality_problem
from labdesk.generate.judges import (
    AnswersQuestion,
    AsksItsFact,
    Finished,
    Grounded,
    NotCopied,
    OnTask,
    Pair,
    Standalone,
    quote,
)
from labdesk.generate.steps import Check, Judged, Step, Write
from labdesk.names import question_lead
from labdesk.taxonomy.leaves import Leaf, Seed

if TYPE_CHECKING:
    from labdesk.documents import Chunk
    from labdesk.documents.facts import Fact
    from labdesk.recipes import GenerateSettings

NOTHING_TO_ASK = "NONE"
_SUMMARY_REQUEST = "Summarize the passage."


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
    """What the step closures read: the leaf, its facts, the settings, the blocklist and the
    memory."""

    leaf: Leaf
    facts: list[Fact]
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

    @property
    def facts(self) -> list[Fact]:
        """The knowledge leaf's facts, in document order (none for a skill)."""
        return self._shared.facts

    @property
    def target(self) -> int:
        """Accepted Q&A the leaf aims for: per fact for knowledge, per leaf for skills."""
        if self.leaf.kind == "knowledge":
            return len(self.facts) * self.settings.questions_per_fact
        return self.settings.samples_per_leaf

    def candidates(
        self, round_: int, count: int, accepted: Sequence[dict[str, Any]] = ()
    ) -> list[Candidate]:
        """Round `round_`'s candidates: `count` Q&A ones (+ chunk summaries in round 0).

        Each candidate draws its own seed examples (diversity); a knowledge candidate asks about
        the fact with the fewest accepted questions so far (earlier rounds' records), so every
        fact is covered before any gets more.
        """
        slug = self.leaf.slug
        facts = self._plan_facts(count, accepted) if self.facts else []
        made = []
        for index in range(count):
            cid = candidate_id(slug, round_, index, "qa")
            rng = random.Random(derive_seed(self.settings.seed, cid, "examples"))
            examples = rng.sample(
                self.seeds, min(self.settings.examples_per_prompt, len(self.seeds))
            )
            fact, nth = facts[index] if facts else (None, 0)
            chunk = fact.chunk if fact else None
            candidate = Candidate(cid, round_, index, "qa", examples, chunk, fact)
            if fact is not None and (terms := fact.terms()):
                candidate.asks = terms[nth % len(terms)]  # a fact's questions ask for each in turn
            if fact is not None and self.settings.knowledge_answers == "fact":
                candidate.fields["answer"] = fact.text
            made.append(candidate)
        if round_ == 0 and self.leaf.kind == "knowledge":
            if "summary" in self.settings.augmentations:
                for number, chunk in enumerate(self.chunks):
                    cid = candidate_id(slug, 0, number, "summary")
                    made.append(Candidate(cid, 0, len(made), "summary", [], chunk))
            if {"cloze", "cloze_short", "cloze_gapped"} & set(self.settings.augmentations):
                made += self._cloze(len(made))
            if "seeds" in self.settings.augmentations:
                made += self._seed_samples(len(made))
        return made

    def _seed_samples(self, start: int) -> list[Candidate]:
        """The shown seeds' own Q&A, asked closed-book (written by the user, so no step writes).

        Never the held-out seeds: those stay unseen by teacher and student alike.
        """
        pairs = [qa for seed in self.seeds for qa in seed.qa]
        return [
            Candidate(
                candidate_id(self.leaf.slug, 0, number, "seed"),
                0,
                start + number,
                "seed",
                [],
                fields={"question": qa.question, "answer": qa.answer},
            )
            for number, qa in enumerate(pairs)
        ]

    def _cloze(self, start: int) -> list[Candidate]:
        """Every fact's cloze questions, answered by the fact (written, so no step writes)."""
        counts = word_counts(self.facts)
        short = "cloze_short" in self.settings.augmentations
        gapped = "cloze_gapped" in self.settings.augmentations
        asked = [
            (f, q)
            for f in self.facts
            for q in cloze_questions(f, counts, short=short, gapped=gapped)
        ]
        return [
            Candidate(
                candidate_id(self.leaf.slug, 0, number, "cloze"),
                0,
                start + number,
                "cloze",
                [],
                fact.chunk,
                fact,
                fields={"question": question, "answer": fact.text},
            )
            for number, (fact, question) in enumerate(asked)
        ]

    def _plan_facts(self, count: int, accepted: Sequence[dict[str, Any]]) -> list[tuple[Fact, int]]:
        """The fact of each of `count` questions, and how many that fact had before it."""
        have = Counter(
            (r["metadata"].get("fact") or {}).get("text")
            for r in accepted
            if r["metadata"]["type"] == "qa"
        )
        load = [have.get(f.text, 0) for f in self.facts]
        plan = []
        for _ in range(count):
            pick = min(range(len(self.facts)), key=lambda i: (load[i], i))
            plan.append((self.facts[pick], load[pick]))
            load[pick] += 1
        return plan

    def user_message(self, candidate: Candidate) -> str:
        """The training sample's user turn."""
        if candidate.type == "summary":
            assert candidate.chunk is not None
            return t.render(
                "train_summary", outline=self.leaf.task_description, chunk=candidate.chunk.text
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
        if candidate.type in GIVEN_TYPES:
            return None
        text = dedup_text(candidate.type, self.user_message(candidate), candidate.fields["answer"])
        return self._shared.memory.samples.match(text)

    def remember(self, candidate: Candidate) -> None:
        text = dedup_text(candidate.type, self.user_message(candidate), candidate.fields["answer"])
        self._shared.memory.samples.add(candidate.id, text)


def dedup_text(type_: str, user: str, answer: str) -> str:
    # Summaries share their user turn (the chunk) with each other: compare the answer only.
    return f"{type_}: {answer}" if type_ == "summary" else f"{user}\n{answer}"


def build_pipeline(
    leaf: Leaf, seeds: list[Seed], chunks: list[Chunk], settings: GenerateSettings
) -> Pipeline:
    facts = [fact for chunk in chunks for fact in chunk_facts(chunk)]
    shared = _Shared(
        leaf, facts, settings, Blocklist(settings.blocklist), Memory.empty(settings.dedup_threshold)
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


def _question_filter(shared: _Shared) -> Check:
    """A question, or the teacher's word that the fact holds nothing worth asking."""
    quality = _filter("filter_question", "question", shared)

    def run(candidate: Candidate) -> str | None:
        question = candidate.fields.get("question", "").strip()
        if question.rstrip(".").upper() == NOTHING_TO_ASK:
            return "the teacher found nothing worth asking in this fact"
        if not question.endswith("?") and candidate.fact is not None:
            return "not a question (no question mark)"
        return quality.run(candidate)

    return Check("filter_question", run, frozenset({"qa"}))  # a summary has no question


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


def _round_trip(shared: _Shared) -> Check:
    """The judge's answer from the chunk (`answer_back`) must draw on the question's own fact."""

    def run(candidate: Candidate) -> str | None:
        reply = candidate.fields["answered_back"]
        drawn = closest_fact(shared.facts, reply, candidate.fields["question"])
        if drawn is not None and drawn == candidate.fact:
            return None
        source = f"the fact {quote(drawn.text)}" if drawn else "no fact of the documents"
        return f"answered from its passage, it gets {quote(reply, 12)}, drawn from {source}"

    return Check("round_trip", run, frozenset({"qa"}))


def _seed_answers(candidate: Candidate) -> tuple[str, ...]:
    return tuple(qa.answer for seed in candidate.examples for qa in seed.qa)


def _skill_judges(shared: _Shared) -> tuple[Step, ...]:
    """Not copied, finished and on task: what every skill response must be."""
    judges = shared.settings.judges

    def pair(candidate: Candidate) -> Pair:
        return Pair(
            kind=shared.leaf.kind,
            question=candidate.fields["question"],
            answer=candidate.fields["answer"],
            passage=candidate.fields.get("context", ""),
            task=shared.leaf.task_description,
            examples=_seed_answers(candidate),
        )

    steps: tuple[Step, ...] = (
        Judged(NotCopied(), pair),
        Judged(Finished(minimum=judges.finished), pair),
        Judged(OnTask(margin=judges.on_task), pair),
    )
    if shared.leaf.kind == "grounded_skill":
        steps += (Judged(Grounded(margin=judges.grounded), pair),)
    return steps


def _skill_answer_messages(shared: _Shared) -> Callable[[Candidate, str], list[dict[str, str]]]:
    """The task as the system message, the seed examples as earlier turns, then the request."""

    def messages(candidate: Candidate, system: str) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": system}]
        for seed in candidate.examples:
            qa = seed.qa[0]
            request = f"{seed.context.strip()}\n\n{qa.question}" if seed.context else qa.question
            turns += [
                {"role": "user", "content": request},
                {"role": "assistant", "content": qa.answer.strip()},
            ]
        context = candidate.fields.get("context")
        question = candidate.fields["question"]
        turns.append(
            {"role": "user", "content": f"{context}\n\n{question}" if context else question}
        )
        return turns

    return messages


# -- knowledge ------------------------------------------------------------------------------


def _knowledge_steps(shared: _Shared) -> tuple[Step, ...]:
    judges = shared.settings.judges
    outline = " ".join(shared.leaf.task_description.split())

    def fact(candidate: Candidate) -> str:
        assert candidate.fact is not None
        return candidate.fact.shown()

    def qa_pair(candidate: Candidate) -> Pair:
        question, answer = candidate.fields["question"], candidate.fields["answer"]
        own = candidate.fact
        return Pair(
            kind="knowledge",
            question=question,
            answer=answer,
            passage=fact(candidate),
            task=outline,
            examples=_seed_answers(candidate),
            # a fact answered by itself competes for its question with the facts it names
            rivals=rival_facts(shared.facts, own, question) if own and answer == own.text else (),
        )

    def summary_pair(candidate: Candidate) -> Pair:
        assert candidate.chunk is not None
        return Pair(
            kind="knowledge",
            question=_SUMMARY_REQUEST,
            answer=candidate.fields["answer"],
            passage=candidate.chunk.text,
            task=outline,
        )

    def question_pair(candidate: Candidate) -> Pair:
        return Pair("knowledge", candidate.fields["question"], "", fact(candidate))

    wanted = shared.settings.augmentations
    summaries: frozenset[SampleType] = frozenset({"summary"} if "summary" in wanted else ())
    teacher_answers = shared.settings.knowledge_answers == "teacher"
    answered: dict[SampleType, str] = {"qa": "knowledge_answer"} if teacher_answers else {}
    return (
        Write(
            "write_question",
            "question",
            {"qa": "knowledge_question"},
            lambda c: {"outline": outline, "fact": fact(c), "asks": c.asks or "all of it"},
            style="completion",
            examples=t.show_fact_questions,
            lead=lambda c: question_lead(c.asks) if c.asks else "",
            short=frozenset({"qa"}),
            words=0.5,
        ),
        _question_filter(shared),
        Judged(Standalone(), question_pair),
        _dedup("dedup_question", "question", lambda m: m.questions, shared),
        # Round trip: the judge answers the question from the whole chunk; a question that
        # asks its fact draws that fact's words, a loosely worded one draws a neighbour's.
        Write(
            "answer_back",
            "answered_back",
            {"qa": "knowledge_answer"},
            lambda c: {"fact": c.chunk.text if c.chunk else "", "question": c.fields["question"]},
            short=frozenset({"qa"}),
            role="judge",
            greedy=True,
        ),
        _round_trip(shared),
        Write(
            "write_answer",
            "answer",
            {**answered, **dict.fromkeys(summaries, "knowledge_summary")},
            lambda c: {
                "fact": fact(c) if c.type == "qa" else "",
                "question": c.fields.get("question", ""),
                "chunk": c.chunk.text if c.chunk else "",
            },
            short=frozenset({"qa"}),
        ),
        _filter(
            "filter_answer", "answer", shared, min_words=1, types=frozenset({"qa", *summaries})
        ),
        # An answer that is the fact itself is grounded, finished and not copied by making.
        *(
            (
                Judged(NotCopied(), qa_pair),
                Judged(Finished(minimum=judges.finished), qa_pair),
                Judged(Grounded(margin=judges.grounded), qa_pair),
            )
            if teacher_answers
            else ()
        ),
        Judged(Finished(minimum=judges.finished), summary_pair, summaries),
        Judged(Grounded(margin=judges.grounded), summary_pair, summaries),
        Judged(AnswersQuestion(margin=judges.answers_question), qa_pair),
        Judged(AsksItsFact(margin=judges.asks_its_fact), qa_pair),
    )


# -- skills ---------------------------------------------------------------------------------


def _freeform_steps(shared: _Shared) -> tuple[Step, ...]:
    task = shared.leaf.task_description
    return (
        Write(
            "write_question",
            "question",
            {"qa": "skill_question"},
            lambda c: {"task": task},
            style="completion",
            examples=t.show_requests,
            words=0.5,
        ),
        _filter("filter_question", "question", shared),
        _dedup("dedup_question", "question", lambda m: m.questions, shared),
        Write(
            "write_answer",
            "answer",
            {"qa": "skill_answer"},
            lambda c: {"task": task},
            messages=_skill_answer_messages(shared),
        ),
        _filter("filter_answer", "answer", shared, min_words=1),
        *_skill_judges(shared),
    )


def _grounded_steps(shared: _Shared) -> tuple[Step, ...]:
    task = shared.leaf.task_description
    return (
        Write(
            "write_context",
            "context",
            {"qa": "grounded_context"},
            lambda c: {"task": task},
            style="completion",
            examples=t.show_contexts,
        ),
        _filter("filter_context", "context", shared, min_words=4),
        _dedup("dedup_context", "context", lambda m: m.contexts, shared),
        Write(
            "write_question",
            "question",
            {"qa": "grounded_question"},
            lambda c: {"task": task, "context": c.fields["context"]},
            style="completion",
            examples=t.show_context_requests,
            words=0.5,
        ),
        _filter("filter_question", "question", shared),
        Write(
            "write_answer",
            "answer",
            {"qa": "skill_answer"},
            lambda c: {"task": task},
            messages=_skill_answer_messages(shared),
        ),
        _filter("filter_answer", "answer", shared, min_words=1),
        *_skill_judges(shared),
    )
