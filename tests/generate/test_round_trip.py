"""The round trip: the judge answers a candidate's question from the whole chunk, and the
question is kept only when that answer draws on the fact it was written for (real SmolLM2)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from labdesk.documents.sample import sample_facts
from labdesk.generate.candidates import Candidate
from labdesk.generate.leafrun import LeafRun
from labdesk.generate.models import Models
from labdesk.generate.pipelines import build_pipeline
from labdesk.recipes import EngineSettings, GenerateSettings
from labdesk.resources import data_dir
from labdesk.taxonomy import load_taxonomy

# (question, the start of the fact it was written for, kept?)
ASKED = [
    ("How long does the ferry crossing to Kelderwick take?", "The crossing takes two h", True),
    ("From how far away can the Gullstone light be seen?", "The light shows two whit", True),
    ("Which port does the ferry to Kelderwick leave from?", "The crossing takes two h", False),
    ("How many people are there on the island of Kelderwick?", "The best-known product o", False),
]


def test_a_question_is_kept_when_its_answer_from_the_chunk_draws_on_its_fact(
    smollm2: Path,
) -> None:
    from labdesk.models.engine import Engine

    leaf = next(x for x in load_taxonomy(data_dir("taxonomy")).leaves if x.kind == "knowledge")
    chunks = list({f.chunk.document: f.chunk for f in sample_facts()}.values())  # whole documents
    pipeline = build_pipeline(leaf, list(leaf.seeds), chunks, GenerateSettings(short_tokens=48))
    trip = tuple(s for s in pipeline.steps if s.name in ("answer_back", "round_trip"))
    assert len(trip) == 2
    by_start = {f.text[:24]: f for f in pipeline.facts}
    candidates = [
        Candidate(
            f"trip-{n}",
            0,
            n,
            "qa",
            [],
            fact.chunk,
            fact,
            fields={"question": q, "answer": fact.text},
        )
        for n, (q, start, _) in enumerate(ASKED)
        for fact in [by_start[start]]
    ]
    engine = Engine.load(smollm2, EngineSettings(n_ctx=2048, parallel=4))
    try:
        models = Models(engine, engine, "smollm2", "smollm2")
        run = LeafRun(replace(pipeline, steps=trip), models, system_prompt="You are helpful.")
        run.take(candidates)
    finally:
        engine.close()
    traces = [c.trace for c in candidates]
    assert [c.alive for c in candidates] == [kept for _, _, kept in ASKED], traces
    # the rejection says what the judge answered and which fact that answer came from
    assert candidates[2].rejection is not None
    step, reason = candidates[2].rejection
    assert step == "round_trip" and "Margit Rose" in reason, reason
    assert run.tokens["judge"] > 0 and run.tokens["teacher"] == 0  # the judge answered
