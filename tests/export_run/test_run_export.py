"""export → load → chat, on the real stories260K student with a real (random) LoRA adapter."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from labdesk.chat import ChatSession, load_session
from labdesk.chat.models import open_chatter, resolve_chat_model
from labdesk.errors import ModelError
from labdesk.events import Event
from labdesk.export.registry import find_tuned, list_tuned
from labdesk.export.run_export import export_run
from labdesk.runs import RunPaths
from labdesk.workspace import Workspace
from tests.evaluate.planted import SYSTEM
from tests.export_run.conftest import Exported


def _logits(path: Path, tokens: list[int], lora: Path | None = None) -> np.ndarray:
    from labdesk.export.verify import load

    llm = load(path, lora_path=lora)
    llm.eval(tokens)
    out = np.asarray(llm.scores[: len(tokens)]).copy()
    llm.close()
    return out


def test_export_writes_a_registered_chat_model_that_differs_from_the_base(
    exported: Exported,
) -> None:
    ws, run, model = exported.ws, exported.run, exported.model
    assert find_tuned(ws, "lily") == model and list_tuned(ws) == [model]
    for path in (model.gguf, model.base_gguf, model.merged_gguf):
        assert Path(path).is_file()
    tokens = [1, 403, 407, 261, 378, 66, 259]
    merged, base = _logits(Path(model.gguf), tokens), _logits(Path(model.base_gguf), tokens)
    assert np.isfinite(merged).all()
    assert np.abs(merged - base).max() > 1e-2  # the adapter is in the exported weights

    # The same logits transformers computes for student + adapter (PEFT), position by position.
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        hf = AutoModelForCausalLM.from_pretrained(run.export / "merged", dtype=torch.float32)
        reference = (
            PeftModel.from_pretrained(
                AutoModelForCausalLM.from_pretrained(exported.student, dtype=torch.float32),
                run.final_adapter,
            )(torch.tensor([tokens]))
            .logits[0]
            .numpy()
        )
        assert np.allclose(hf(torch.tensor([tokens])).logits[0].numpy(), reference, atol=1e-4)
    assert np.abs(merged - reference).max() < 1e-3


def test_merged_gguf_equals_base_gguf_plus_adapter_gguf(exported: Exported) -> None:
    model = exported.model
    tokens = [1, 403, 407, 261, 378, 66, 259]
    merged = _logits(Path(model.merged_gguf), tokens)
    applied = _logits(Path(model.base_gguf), tokens, lora=Path(model.adapter_gguf))
    assert np.abs(merged - applied).max() < 1e-3


def test_modelfile_has_the_template_system_prompt_and_stops(exported: Exported) -> None:
    model = exported.model
    text = Path(model.modelfile).read_text(encoding="utf-8")
    gguf_line = next(line for line in text.splitlines() if line.startswith("FROM "))
    assert (Path(model.modelfile).parent / gguf_line[5:]).resolve() == Path(model.gguf).resolve()
    assert (
        'TEMPLATE """{{ if .System }}<|system|>\n{{ .System }}\n{{ end }}{{ if .Prompt }}<|user|>\n'
        '{{ .Prompt }}\n{{ end }}<|assistant|>\n{{ .Response }}<|endoftext|>"""'
    ) in text
    assert f'SYSTEM """{SYSTEM}"""' in text
    assert 'PARAMETER stop "<|endoftext|>"' in text and 'PARAMETER stop "<|user|>"' in text


def test_a_second_export_reuses_every_step(exported: Exported) -> None:
    ws, run, recipe, student, model = exported[:5]
    mtime = Path(model.gguf).stat().st_mtime_ns
    events: list[Event] = []
    again = export_run(run, recipe, ws, student_dir=student, reporter=events.append)
    assert Path(again.gguf).stat().st_mtime_ns == mtime
    assert {e.step for e in events if e.message.endswith("up to date")} >= {
        "merge",
        "merged-gguf",
        "base-gguf",
    }


def test_export_without_a_trained_adapter_says_what_to_do(
    exported: Exported, tmp_path: Path
) -> None:
    ws, recipe, student = exported.ws, exported.recipe, exported.student
    with pytest.raises(ModelError, match="no trained adapter"):
        export_run(RunPaths(tmp_path / "empty"), recipe, ws, student_dir=student)


def test_exported_model_chats_in_its_template_with_its_system_prompt(exported: Exported) -> None:
    ws = exported.ws
    chat_model = resolve_chat_model(ws, None)  # the newest tuned model
    assert chat_model.name == "lily" and chat_model.system_prompt == SYSTEM
    chatter = open_chatter(chat_model, temperature=0.0, max_tokens=16, n_threads=2)
    assert chatter.stop == ("<|endoftext|>", "<|user|>")
    session = ChatSession(model=chat_model.ref, system_prompt=chat_model.system_prompt)
    pieces = list(chatter.reply(session, "Once upon a time"))
    assert pieces and session.turns[-1].content == "".join(pieces)
    assert chatter.prompt_for(session.messages()[:-1]).startswith(f"<|system|>\n{SYSTEM}\n")


def test_chat_cli_streams_saves_and_reloads(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = exported.ws
    from labdesk.cli.main import main

    monkeypatch.setenv("LABDESK_HOME", str(ws.home))
    monkeypatch.setattr(
        sys,
        "stdin",
        io.StringIO("Once upon a time\n/save story\n/system Be brief.\n/compare\n/quit\n"),
    )
    assert main(["chat", "lily", "--temperature", "0", "--max-tokens", "12", "--threads", "2"]) == 0
    saved = load_session(ws.chats, "story")
    assert [t.role for t in saved.turns] == ["user", "assistant"]
    assert saved.turns[0].content == "Once upon a time" and saved.model == "lily"
    assert saved.system_prompt == "Be brief."  # /system applies to the saved conversation


def test_chat_cli_with_a_seed_answers_a_new_conversation_alike(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labdesk.cli.main import main

    monkeypatch.setenv("LABDESK_HOME", str(exported.ws.home))
    asked = "Once upon a time\n/save first\n/new\nOnce upon a time\n/save second\n/quit\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO(asked))
    options = ["--temperature", "1.0", "--seed", "11", "--max-tokens", "16", "--threads", "2"]
    assert main(["chat", "lily", *options]) == 0
    first, second = (load_session(exported.ws.chats, n).turns[-1] for n in ("first", "second"))
    assert first.content and first.content == second.content


def test_quantizing_adds_only_the_quantize_step(exported: Exported) -> None:
    ws, run, recipe, student, model = exported[:5]
    events: list[Event] = []
    q8 = recipe.model_copy(update={"export": recipe.export.model_copy(update={"quantize": "q8_0"})})
    quantized = export_run(run, q8, ws, student_dir=student, reporter=events.append)
    assert Path(quantized.gguf).name == "lily-q8_0.gguf" and quantized.quantize == "q8_0"
    assert find_tuned(ws, "lily") == quantized  # the registry now offers the quantized model
    assert "quantize" not in {e.step for e in events if e.message.endswith("up to date")}
    assert {e.step for e in events if e.message.endswith("up to date")} >= {"merge", "adapter-gguf"}
    tokens = [1, 403, 407, 261, 378, 66, 259]
    q8_logits = _logits(Path(quantized.gguf), tokens)
    f32_logits = _logits(Path(model.merged_gguf), tokens)
    assert np.abs(q8_logits - f32_logits).max() < 0.5  # close to the f32 model, not identical
    text = Path(quantized.modelfile or "").read_text(encoding="utf-8")
    assert "FROM ./lily-q8_0.gguf" in text


def test_ctrl_c_in_the_chat_cli_keeps_the_partial_answer(
    exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labdesk.cli import render
    from labdesk.cli.main import main

    ws = exported.ws
    monkeypatch.setenv("LABDESK_HOME", str(ws.home))
    monkeypatch.setattr(sys, "stdin", io.StringIO("Once upon a time\n/save cut\n/quit\n"))
    shown: list[str] = []
    original = render.console.print

    def print_then_interrupt(*objects: object, **kwargs: object) -> None:
        original(*objects, **kwargs)  # type: ignore[arg-type]
        if kwargs.get("markup") is False and objects and "you>" not in str(objects[0]):
            shown.append(str(objects[0]))
            if len(shown) == 2:
                raise KeyboardInterrupt  # the user presses Ctrl-C after two pieces

    monkeypatch.setattr(render.console, "print", print_then_interrupt)
    assert main(["chat", "lily", "--temperature", "0", "--max-tokens", "32", "--threads", "2"]) == 0
    saved = load_session(ws.chats, "cut")
    answer = saved.turns[-1]
    assert answer.role == "assistant" and answer.interrupted
    assert answer.content.startswith("".join(shown))


def test_chat_without_any_tuned_model_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no tuned model to chat with") as info:
        resolve_chat_model(Workspace.open(tmp_path / "empty-ws"), None)
    assert "labdesk export run" in str(info.value)
    with pytest.raises(ModelError, match="no tuned model named 'nope'"):
        resolve_chat_model(Workspace.open(tmp_path / "empty-ws"), "nope")


def test_export_run_cli_reports_the_chat_model_and_ollama_command(
    exported: Exported, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labdesk.cli.main import main
    from tests.evaluate.planted import planted_overrides

    monkeypatch.setenv("LABDESK_HOME", str(exported.ws.home))
    monkeypatch.setenv("COLUMNS", "300")
    sets = planted_overrides(exported.student)
    assert main(["export", "run", "lily", *(x for s in sets for x in ("--set", s))]) == 0
    out = capsys.readouterr().out
    assert "labdesk chat lily" in out
    assert f"ollama create lily -f {exported.ws.models / 'tuned' / 'lily' / 'Modelfile'}" in out
