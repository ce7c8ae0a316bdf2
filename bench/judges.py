"""How well each generation judge separates good pairs from bad, on a labelled set.

`bench/judge_set.json` (written for labdesk) holds question/answer pairs over the sample
taxonomy's leaves, each good or bad with one flaw: unfaithful to the passage, off task, cut
off, copied from the prompt, a question that needs the passage, or a question about another
fact answered with a document sentence (as generation answers knowledge questions; those pairs
meet their rival sentences as in generation). Every judge runs on the
pairs of the kinds it judges, with SmolLM2-135M-Instruct (the demo recipe's judge) as the judge
model. A judge's positive is a rejection: precision is the share of its rejections that hit bad
pairs, recall the share of bad pairs it rejects. "Better than chance" means it rejects bad pairs
more often than good ones. `round_trip` is the knowledge pipeline's check that the judge,
answering a question from the whole document, answers it from the pair's own sentence (pairs
whose answer is a document sentence). `all` is the judges together, as generation applies them.

    .venv/bin/python bench/judges.py [--gguf PATH] [--threads 2] [--show N]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from labdesk.documents.facts import Fact, rival_facts
from labdesk.documents.sample import sample_facts
from labdesk.generate.candidates import Candidate
from labdesk.generate.judges import MODEL_JUDGES, RULE_JUDGES, Pair, Verdict, run_judges
from labdesk.generate.leafrun import LeafRun
from labdesk.generate.models import Models
from labdesk.generate.pipelines import build_pipeline
from labdesk.models.engine import Engine
from labdesk.recipes import EngineSettings, load_recipe
from labdesk.resources import data_dir
from labdesk.taxonomy import load_taxonomy

HERE = Path(__file__).resolve().parent


def seed_answers_by_task() -> dict[str, tuple[str, ...]]:
    """The sample taxonomy's seed answers per task text, for the copied-from-a-seed check."""
    answers: dict[str, tuple[str, ...]] = {}
    for leaf in load_taxonomy(data_dir("taxonomy")).leaves:
        task = " ".join(leaf.task_description.split())
        answers[task] = tuple(qa.answer for seed in leaf.seeds for qa in seed.qa)
    return answers


def load_pairs() -> list[tuple[Pair, dict[str, str]]]:
    data = json.loads((HERE / "judge_set.json").read_text(encoding="utf-8"))
    seeds = seed_answers_by_task()
    facts = {fact.text: fact for fact in sample_facts()}
    out = []
    for item in data["items"]:
        # A document sentence as the answer (generation's knowledge pairs) meets its rivals.
        own = facts.get(item["answer"])
        rivals = rival_facts(list(facts.values()), own, item["question"]) if own else ()
        pair = Pair(
            kind=item["kind"],
            question=item["question"],
            answer=item["answer"],
            passage=item["passage"],
            task=item["task"],
            examples=seeds.get(" ".join(item["task"].split()), ()),
            rivals=rivals,
        )
        out.append((pair, item))
    return out


def judge_model(gguf: str | None, threads: int | None) -> Engine:
    settings = EngineSettings(n_ctx=2048, parallel=8, n_threads=threads)
    if gguf:
        return Engine.load(Path(gguf), settings)
    from labdesk.models.store import pull_model
    from labdesk.workspace import Workspace

    path = pull_model(load_recipe("demo").teacher, Workspace.open(), want="gguf")
    return Engine.load(path, settings)


def round_trips(pairs: list[tuple[Pair, dict[str, str]]], model: Engine) -> list[Verdict | None]:
    """The knowledge pipeline's round trip on each pair whose answer is a document sentence:
    the judge answers the question from the whole document, as generation does from a chunk."""
    facts = {fact.text: fact for fact in sample_facts()}
    leaf = next(x for x in load_taxonomy(data_dir("taxonomy")).leaves if x.kind == "knowledge")
    chunks = list({f.chunk.document: f.chunk for f in facts.values()}.values())
    settings = load_recipe("demo").generate
    pipeline = build_pipeline(leaf, list(leaf.seeds), chunks, settings)
    trip = tuple(s for s in pipeline.steps if s.name in ("answer_back", "round_trip"))
    asked: list[tuple[int, Fact, str]] = [
        (n, facts[p.answer], p.question) for n, (p, _) in enumerate(pairs) if p.answer in facts
    ]
    candidates = [
        Candidate(f"pair-{n}", 0, n, "qa", [], f.chunk, f, fields={"question": q, "answer": f.text})
        for n, f, q in asked
    ]
    models = Models(model, model, "judge", "judge")
    LeafRun(replace(pipeline, steps=trip), models, system_prompt="").take(candidates)
    verdicts: list[Verdict | None] = [None] * len(pairs)
    for (n, _, _), candidate in zip(asked, candidates, strict=True):
        reason = candidate.rejection[1] if candidate.rejection else "draws on its own fact"
        verdicts[n] = Verdict(candidate.alive, 0.0, reason)
    return verdicts


def table(pairs: list[tuple[Pair, dict[str, str]]], verdicts: list[dict[str, Verdict]]) -> None:
    names = [*MODEL_JUDGES, "round_trip", *RULE_JUDGES, "all"]
    flaws = sorted({item["flaw"] for _, item in pairs if item["flaw"]})
    head = f"{'judge':<17}{'kind':<6}{'n':>5}{'bad':>5}{'rej good':>9}{'rej bad':>8}"
    head += f"{'precision':>10}{'recall':>8}  " + " ".join(f"{f[:8]:>8}" for f in flaws)
    print(head)
    for name in names:
        rows = []
        for (pair, item), verdict in zip(pairs, verdicts, strict=True):
            if name == "all":
                if verdict:
                    rows.append((item, not all(v.ok for v in verdict.values())))
            elif name in verdict and (name != "asks_its_fact" or pair.rivals):
                # asks_its_fact has nothing to compare without rivals: those pairs are not its
                rows.append((item, not verdict[name].ok))
        bad = [r for r in rows if r[0]["label"] == "bad"]
        good = [r for r in rows if r[0]["label"] == "good"]
        rej_bad = sum(1 for _, rejected in bad if rejected)
        rej_good = sum(1 for _, rejected in good if rejected)
        precision = rej_bad / max(1, rej_bad + rej_good)
        recall = rej_bad / max(1, len(bad))
        per_flaw = []
        for flaw in flaws:
            of = [rejected for item, rejected in bad if item["flaw"] == flaw]
            per_flaw.append(f"{sum(of)}/{len(of)}" if of else "-")
        kind = "rule" if name in RULE_JUDGES else "" if name == "all" else "model"
        good_rate = rej_good / max(1, len(good))
        mark = " ✓" if recall > good_rate else " ✗"
        print(
            f"{name:<17}{kind:<6}{len(rows):>5}{len(bad):>5}{f'{rej_good}/{len(good)}':>9}"
            f"{rej_bad:>8}{precision:>10.2f}{recall:>8.2f}  "
            + " ".join(f"{p:>8}" for p in per_flaw)
            + mark
        )
    print("✓: rejects bad pairs more often than good ones (better than chance)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", help="judge model (default: the demo recipe's)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--show", type=int, default=0, help="print N rejections per judge")
    args = parser.parse_args()
    pairs = load_pairs()
    model = judge_model(args.gguf, args.threads)
    judges = [*MODEL_JUDGES.values(), *RULE_JUDGES.values()]
    started = time.perf_counter()
    verdicts = run_judges(judges, [p for p, _ in pairs], model)
    for verdict, trip in zip(verdicts, round_trips(pairs, model), strict=True):
        if trip is not None:
            verdict["round_trip"] = trip
    seconds = time.perf_counter() - started
    print(f"judge model: {model.path.name}; {len(pairs)} labelled pairs; {seconds:.1f}s\n")
    table(pairs, verdicts)
    if args.show:
        shown: dict[str, int] = defaultdict(int)
        for (_, item), verdict in zip(pairs, verdicts, strict=True):
            for name, v in verdict.items():
                if shown[name] < args.show:
                    shown[name] += 1
                    print(f"[{name}] {item['label']}/{item['flaw']}: {v.value:+.2f} {v.reason}")


if __name__ == "__main__":
    main()
