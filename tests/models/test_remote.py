"""A teacher and judge behind a real OpenAI-compatible server: llama-cpp-python's own server
(`python -m llama_cpp.server`) on 127.0.0.1, serving SmolLM2-135M-Instruct.

What the server returns is checked against labdesk's in-process engine on the same GGUF: greedy
text and the log-probabilities the judges read must agree, so a run may move its teacher to a
server without its judges changing their minds.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labdesk.errors import ModelError
from labdesk.generate.judges import reply_request
from labdesk.models.engine import Engine
from labdesk.models.ggufinfo import read_gguf
from labdesk.models.remote import RemoteModel
from labdesk.models.types import GenRequest, ScoreRequest
from labdesk.recipes import EngineSettings, ModelRef, RemoteSettings

KEY_ENV = "LABDESK_TEST_SERVER_KEY"
KEY = "test-key-5f1c9e"
QUICK = RemoteSettings(concurrency=4, timeout_s=60, retries=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    url: str
    gguf: Path
    log: Path

    def ref(self, **fields: str) -> ModelRef:
        template = read_gguf(self.gguf).chat_template
        assert template is not None
        values = {
            "endpoint": self.url,
            "model": self.gguf.name,
            "api_key_env": KEY_ENV,
            "chat_template": template,
        } | fields
        return ModelRef(**values)  # type: ignore[arg-type]

    def completions(self) -> int:
        """Completion requests the server has logged so far."""
        return self.log.read_text(encoding="utf-8", errors="replace").count("/v1/completions")


def start_server(gguf: Path, log: Path, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
    args += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", *extra]
    with log.open("wb") as out:
        server = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text(encoding="utf-8", errors="replace")
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2)
            break
        except urllib.error.HTTPError:  # up, and asking for the key
            break
        except OSError:
            time.sleep(0.3)
    return server, url


@pytest.fixture(scope="module")
def served(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    server, url = start_server(smollm2, log, "--api_key", KEY)
    os.environ[KEY_ENV] = KEY
    try:
        yield Served(url, smollm2, log)
    finally:
        os.environ.pop(KEY_ENV, None)
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def remote(served: Served) -> RemoteModel:
    return RemoteModel.open(served.ref(), QUICK, n_ctx=2048)


@pytest.fixture(scope="module")
def engine(smollm2: Path) -> Iterator[Engine]:
    # flash attention off, one sequence, no prompt reuse: how llama-cpp-python's server computes
    engine = Engine.load(
        smollm2, EngineSettings(n_ctx=2048, parallel=1, flash_attn="off", reuse_prefix=False)
    )
    yield engine
    engine.close()


def _messages(question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": question},
    ]


QUESTIONS = ["What is the capital of France?", "Name a colour of the sky.", "What is 2 + 3?"]


def test_greedy_replies_equal_the_in_process_engine(remote: RemoteModel, engine: Engine) -> None:
    requests = [
        GenRequest(engine.chat_prompt(_messages(q)), 24, stop=engine.stop) for q in QUESTIONS
    ]
    assert [remote.chat_prompt(_messages(q)) for q in QUESTIONS] == [r.prompt for r in requests]
    here = [r.text for r in engine.generate(requests)]
    there = remote.generate(requests)
    assert [r.text for r in there] == here
    assert all(r.finish_reason in ("stop", "length") and r.tokens > 0 for r in there)
    assert remote.stop == engine.stop


def test_judge_scores_equal_the_in_process_engine(remote: RemoteModel, engine: Engine) -> None:
    # replies with their end-of-turn marker, as the judges score them
    requests = [
        reply_request(engine, _messages(q), a)
        for q, a in zip(QUESTIONS, ["Paris.", "Blue", "It is five, or so I think."], strict=True)
    ]
    assert [reply_request(remote, _messages(q), "Paris.") for q in QUESTIONS[:1]] == requests[:1]
    here, there = engine.score(requests), remote.score(requests)
    for a, b in zip(here, there, strict=True):
        assert b.tokens == a.tokens
        assert b.logprobs == pytest.approx(a.logprobs, abs=1e-3)
    assert remote.count_tokens(requests[0].prompt) == engine.count_tokens(requests[0].prompt)


def test_a_pattern_or_schema_reply_meets_it(remote: RemoteModel) -> None:
    prompt = remote.chat_prompt(_messages("Is the sky blue? Answer yes or no."))
    schema = {
        "type": "object",
        "properties": {
            "answer": {"enum": ["yes", "no"]},
            "why": {"type": "string", "maxLength": 40},
        },
        "required": ["answer", "why"],
    }
    verdict, record = remote.generate(
        [
            GenRequest(prompt, 4, pattern="(yes|no)"),
            GenRequest(prompt, 40, temperature=0.7, seed=3, schema=schema),
        ]
    )
    assert verdict.text in ("yes", "no")
    assert record.value is not None and record.value["answer"] in ("yes", "no")


def test_a_stopped_generation_returns_what_it_has(remote: RemoteModel) -> None:
    import threading

    stop = threading.Event()
    stop.set()
    prompts = [remote.chat_prompt(_messages(q)) for q in QUESTIONS]
    results = remote.generate([GenRequest(p, 200) for p in prompts], cancel=stop)
    assert len(results) == 3 and {r.finish_reason for r in results} == {"cancelled"}


def test_what_goes_wrong_is_said_with_the_url(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ModelError, match="does not serve a model named 'nope'") as info:
        RemoteModel.open(served.ref(model="nope"), QUICK, 2048)
    assert served.gguf.name in (info.value.hint or "")

    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ModelError, match=f"{KEY_ENV} holding the API key is not set"):
        RemoteModel.open(served.ref(), QUICK, 2048)
    monkeypatch.setenv(KEY_ENV, "wrong")
    with pytest.raises(ModelError, match="HTTP 401") as info:
        RemoteModel.open(served.ref(), QUICK, 2048)
    assert "api_key_env" in (info.value.hint or "")

    down = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(ModelError, match="did not answer after 2 tries") as info:
        RemoteModel.open(served.ref(endpoint=down), QUICK, 2048)
    assert info.value.where == f"{down}/models"
    assert time.monotonic() - started >= 1.0  # one doubling wait before the second try


def test_log_probabilities_one_token_off_are_refused(served: Served) -> None:
    # llama-cpp-python's server echoes them one token off for a text not starting with BOS
    plain = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    plain += "{% if add_generation_prompt %}assistant:{% endif %}"
    model = RemoteModel.open(served.ref(chat_template=plain), QUICK, 2048)
    with pytest.raises(ModelError, match="do not line up with the text's tokens") as info:
        model.score([ScoreRequest(model.chat_prompt(_messages("Hi")), " Hello.")])
    assert "vLLM" in (info.value.hint or "")


def test_a_server_without_prompt_logprobs_is_a_clear_error(smollm2: Path, tmp_path: Path) -> None:
    # llama-cpp-python's server started without logits for every token cannot score a reply
    server, url = start_server(smollm2, tmp_path / "server.log", "--logits_all", "false")
    try:
        ref = Served(url, smollm2, tmp_path / "server.log").ref(api_key_env=None)  # type: ignore[arg-type]
        model = RemoteModel.open(ref, QUICK, 2048)
        assert model.generate([GenRequest(model.chat_prompt(_messages("Hi")), 4)])[0].text
        with pytest.raises(ModelError, match="no log-probabilities of a prompt's tokens") as info:
            model.score([ScoreRequest("The sky is", " blue.")])
        assert "judge with a GGUF here" in (info.value.hint or "")
    finally:
        server.terminate()
        server.wait(timeout=30)


KNOWLEDGE = "knowledge/geography/islands/kelderwick"


def test_a_run_generates_with_its_teacher_and_judge_behind_the_server(
    served: Served, tmp_path: Path
) -> None:
    from labdesk.generate import run_generation
    from labdesk.runs import RunPaths
    from labdesk.taxonomy import load_taxonomy
    from labdesk.workspace import Workspace
    from tests.generate.helpers import copy_taxonomy, write_recipe

    ws = Workspace.open(tmp_path / "home")
    local = write_recipe(tmp_path, served.gguf, "generate.max_rounds=1")
    recipe = local.model_copy(update={"teacher": served.ref(), "remote": QUICK})
    taxonomy = load_taxonomy(copy_taxonomy(tmp_path / "taxonomy"))
    run = RunPaths(tmp_path / "run")
    slug = KNOWLEDGE.replace("/", "__")

    before = served.completions()
    (leaf,) = run_generation(taxonomy, recipe, run.root, ws=ws, leaves=[KNOWLEDGE]).leaves
    asked = served.completions() - before
    assert leaf.accepted + leaf.rejected > 0 and asked > 0
    rejected = [json.loads(line) for line in run.rejected(slug).read_text().splitlines()]
    assert all(r["metadata"]["reason"] for r in rejected)
    # the round trip's answer is the served judge's too
    model_judges = {"judge_grounded", "judge_answers_question", "judge_finished", "round_trip"}
    judged = [r for r in rejected if r["metadata"]["step"] in model_judges]
    assert judged, "the judges behind the server rejected nothing"
    manifest = json.loads(run.leaf_manifest(slug).read_text(encoding="utf-8"))
    assert manifest["inputs"]["teacher"] == f"{served.url}#{served.gguf}"

    # stopped before the end, it resumes from the replies and scores it has: nothing is asked
    manifest["complete"] = False
    run.leaf_manifest(slug).write_text(json.dumps(manifest), encoding="utf-8")
    before = served.completions()
    (again,) = run_generation(taxonomy, recipe, run.root, ws=ws, leaves=[KNOWLEDGE]).leaves
    assert again.status == "resumed" and again.accepted == leaf.accepted
    assert served.completions() == before

    # the key is used, never written
    written = [p.read_bytes() for p in run.root.rglob("*") if p.is_file()]
    assert written and not any(KEY.encode() in data for data in written)


def test_the_cli_previews_with_a_served_teacher_and_says_when_it_is_down(
    served: Served, tmp_path: Path
) -> None:
    import yaml

    from labdesk.recipes import load_recipe

    def recipe_file(ref: ModelRef) -> str:
        data = load_recipe("tiny").model_dump(mode="json", exclude_none=True)
        data |= {"name": "served", "teacher": ref.model_dump(exclude_none=True)}
        data["remote"] = QUICK.model_dump()
        path = tmp_path / f"{ref.endpoint.split(':')[-1].replace('/', '')}.yaml"  # type: ignore[union-attr]
        path.write_text(yaml.safe_dump(data), encoding="utf-8")
        return str(path)

    def labdesk(*args: str) -> subprocess.CompletedProcess[str]:
        env = os.environ | {"LABDESK_HOME": str(tmp_path / "home")}
        command = [sys.executable, "-m", "labdesk", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    recipe = recipe_file(served.ref())
    pulled = labdesk("models", "pull", recipe)
    assert pulled.returncode == 0, pulled.stderr
    assert f"teacher: {served.gguf.name} at {served.url} (served there)" in pulled.stdout
    leaf = "compositional_skills/writing/freeform/email_tone"
    preview = labdesk("generate", "--recipe", recipe, "--leaf", leaf, "--preview", "1")
    assert preview.returncode == 0, preview.stderr
    assert "email_tone" in preview.stdout

    down = recipe_file(served.ref(endpoint=f"http://127.0.0.1:{free_port()}/v1"))
    failed = labdesk("generate", "--recipe", down, "--leaf", leaf, "--preview", "1")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "did not answer after 2 tries" in failed.stderr and "/v1/models" in failed.stderr


def test_a_judge_that_cannot_be_scored_is_asked_for_verdicts(smollm2: Path, tmp_path: Path) -> None:
    from labdesk.generate import run_generation
    from labdesk.generate.judges import MODEL_JUDGES, RULE_JUDGES, Pair, run_judges
    from labdesk.runs import RunPaths
    from labdesk.taxonomy import load_taxonomy
    from labdesk.workspace import Workspace
    from tests.generate.helpers import copy_taxonomy, write_recipe

    log = tmp_path / "server.log"
    server, url = start_server(smollm2, log, "--logits_all", "false")
    try:
        judge_ref = Served(url, smollm2, log).ref(api_key_env=None)  # type: ignore[arg-type]
        judge = RemoteModel.open(judge_ref, QUICK, 2048)
        assert not judge.can_score()
        passage = "Gullstone lighthouse was built in 1871 on the island of Kelderwick."
        pairs = [
            Pair("knowledge", "When was Gullstone lighthouse built?", "In 1871.", passage),
            Pair("knowledge", "When was Gullstone lighthouse built?", "Last week.", passage),
        ]
        judges = [MODEL_JUDGES["grounded"], RULE_JUDGES["standalone"]]
        verdicts = run_judges(judges, pairs, judge)
        for found in verdicts:
            grounded, standalone = found["grounded"], found["standalone"]
            assert grounded.reason in ("the judge model says yes", "the judge model says no")
            assert grounded.ok == (grounded.value == 1.0)
            assert standalone.ok and standalone.reason == "can be asked without the passage"

        # a run whose judge is that server: every model judge's verdict is one it gave
        ws = Workspace.open(tmp_path / "home")
        local = write_recipe(tmp_path, smollm2, "generate.max_rounds=1")
        recipe = local.model_copy(update={"judge": judge_ref, "remote": QUICK})
        leaf = "compositional_skills/writing/freeform/email_tone"
        run = RunPaths(tmp_path / "run")
        taxonomy = load_taxonomy(copy_taxonomy(tmp_path / "taxonomy"))
        (report,) = run_generation(taxonomy, recipe, run.root, ws=ws, leaves=[leaf]).leaves
        slug = leaf.replace("/", "__")
        rows = [
            json.loads(line)
            for path in (run.accepted(slug), run.rejected(slug))
            if path.exists()
            for line in path.read_text(encoding="utf-8").splitlines()
        ]
        assert len(rows) == report.accepted + report.rejected > 0
        scored = [r["metadata"]["scores"] for r in rows if r["metadata"]["scores"]]
        verdicts_given = [s[name] for s in scored for name in ("finished", "on_task") if name in s]
        assert verdicts_given and set(verdicts_given) <= {0.0, 1.0}
    finally:
        server.terminate()
        server.wait(timeout=30)
