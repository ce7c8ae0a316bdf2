"""Self-replay learned as the base model's distribution (train.self_replay_targets)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from labdesk.recipes import MixSettings
from labdesk.train.base_targets import TargetCache, with_base_targets
from labdesk.train.data import TOP_K, Tokenized, collate, tokenize_dataset
from labdesk.train.mix import mix
from tests.train.helpers import knowledge_samples, tiny_recipe


@pytest.fixture(scope="module")
def tokenizer(stories_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(stories_dir))


def replay_items(tokenizer: Any) -> list[Tokenized]:
    """Four samples marked as the base's own answers, then two ordinary ones."""
    phases, _ = mix(knowledge_samples(), MixSettings(), "You help.")
    rows = phases["knowledge_1"]
    own = [{**s, "metadata": {**s["metadata"], "type": "self_replay"}} for s in rows[:4]]
    return tokenize_dataset(tokenizer, own + rows[4:6], 512, "drop")


def base_and_targets(stories_dir: Path, tokenizer: Any) -> tuple[Any, list[Tokenized]]:
    import torch

    from labdesk.train.torch_backend import base_logprobs, load_base

    recipe = tiny_recipe(stories_dir)
    torch.manual_seed(0)
    base = load_base(stories_dir, recipe.train, "cpu")
    logprobs = base_logprobs(base, "cpu", bf16_autocast=False)
    return base, with_base_targets(replay_items(tokenizer), "distribution", logprobs)


def test_soft_targets_hold_the_base_distribution(stories_dir: Path, tokenizer: Any) -> None:
    import torch

    base, items = base_and_targets(stories_dir, tokenizer)
    assert [t.soft is not None for t in items] == [True] * 4 + [False] * 2
    item = items[0]
    assert item.soft is not None
    at = np.flatnonzero(item.soft.at)
    assert list(at) == item.predicting and len(at) == item.loss_tokens
    bins = np.exp(item.soft.logp[at].astype(np.float64)).sum(axis=-1)
    np.testing.assert_allclose(bins, 1.0, atol=1e-4)  # top-k and the rest: a distribution
    with torch.no_grad():
        logits = base(input_ids=torch.tensor([item.input_ids])).logits[0, at]
    best = item.soft.ids[at][np.arange(len(at)), item.soft.logp[at, :TOP_K].argmax(-1)]
    assert (best == logits.argmax(-1).numpy()).all()
    top = torch.topk(logits, TOP_K, dim=-1).indices.numpy()
    np.testing.assert_array_equal(np.sort(item.soft.ids[at], -1), np.sort(top, -1))


def test_batched_base_rows_match_one_sample_at_a_time(stories_dir: Path, tokenizer: Any) -> None:
    """Padding shorter samples in a batch changes none of their rows."""
    import torch

    from labdesk.train.torch_backend import base_logprobs, load_base

    items = replay_items(tokenizer)
    assert len({len(t.input_ids) for t in items}) > 1  # padding really happens
    torch.manual_seed(0)
    base = load_base(stories_dir, tiny_recipe(stories_dir).train, "cpu")
    batched = {n: rest for n, *rest in base_logprobs(base, "cpu", False, batch_size=4)(items)}
    alone = {n: rest for n, *rest in base_logprobs(base, "cpu", False, batch_size=1)(items)}
    assert sorted(batched) == sorted(alone) == list(range(len(items)))
    for n, item in enumerate(items):
        (ids, logp), (want_ids, want_logp) = batched[n], alone[n]
        assert ids.shape == logp.shape == (len(item.predicting), TOP_K)
        np.testing.assert_array_equal(np.sort(ids), np.sort(want_ids))
        np.testing.assert_allclose(
            np.take_along_axis(logp, ids.argsort(-1), -1),
            np.take_along_axis(want_logp, want_ids.argsort(-1), -1),
            atol=1e-4,
        )


def test_targets_are_computed_once_per_model(tmp_path: Path, tokenizer: Any) -> None:
    """A second phase with the same samples reads the cached targets; another model, or a torn
    file, computes them again."""
    items = replay_items(tokenizer)
    asked: list[int] = []

    def fake_base(todo: list[Tokenized]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        asked.append(len(todo))
        rng = np.random.default_rng(len(asked))
        for n in reversed(range(len(todo))):  # any order
            shape = (len(todo[n].predicting), TOP_K)
            yield n, rng.integers(0, 300, shape), np.log(rng.uniform(0.001, 0.02, shape))

    folder = tmp_path / "base-targets"
    first = with_base_targets(items, "distribution", fake_base, cache=TargetCache(folder, "a"))
    again = with_base_targets(items, "distribution", fake_base, cache=TargetCache(folder, "a"))
    assert asked == [4]
    for one, two in zip(first, again, strict=True):
        assert (one.soft is None) == (two.soft is None)
        if one.soft is not None and two.soft is not None:
            np.testing.assert_array_equal(one.soft.ids, two.soft.ids)
            np.testing.assert_array_equal(one.soft.logp, two.soft.logp)
    with_base_targets(items, "distribution", fake_base, cache=TargetCache(folder, "b"))
    assert asked == [4, 4]
    next(folder.glob("*.npz")).write_bytes(b"torn")
    with_base_targets(items, "distribution", fake_base, cache=TargetCache(folder, "a"))
    assert asked == [4, 4, 1]


def _share_targets(rank: int, port: int, stories_dir: Path, folder: Path) -> None:
    """One of two real gloo processes: its own stand-in base (different numbers on each rank),
    the shared cache folder; records how many samples it computed and the targets it ended with."""
    from transformers import AutoTokenizer

    from labdesk.train.distributed import joined

    items = replay_items(AutoTokenizer.from_pretrained(str(stories_dir)))
    computed: list[int] = []

    def own_base(todo: list[Tokenized]) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        computed.append(len(todo))
        rng = np.random.default_rng(100 + rank)
        for n, item in enumerate(todo):
            shape = (len(item.predicting), TOP_K)
            yield n, rng.integers(0, 300, shape), np.log(rng.uniform(0.001, 0.02, shape))

    environ = {"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank)}
    os.environ.update({**environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    with joined(os.environ) as world:
        out = with_base_targets(
            items, "distribution", own_base, cache=TargetCache(folder, "m"), world=world
        )
    saved: dict[str, Any] = {"computed": np.array(sum(computed))}
    for n, soft in enumerate(t.soft for t in out if t.soft is not None):
        saved |= {f"ids{n}": soft.ids, f"logp{n}": soft.logp}
    np.savez(folder.parent / f"rank{rank}.npz", **saved)


def test_two_processes_split_the_targets_and_share_them(stories_dir: Path, tmp_path: Path) -> None:
    """Each of two processes computes half of the missing targets and reads the other half from
    the cache the other one wrote, so both train on the same targets for half the work."""
    import multiprocessing
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tmp_path / "base-targets"
    spawn = multiprocessing.get_context("spawn")
    workers = [
        spawn.Process(target=_share_targets, args=(rank, port, stories_dir, folder))
        for rank in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        if worker.is_alive():  # hung at a barrier: fail without leaving it behind
            worker.kill()
            worker.join()
    assert [w.exitcode for w in workers] == [0, 0]
    ranks = [np.load(tmp_path / f"rank{rank}.npz") for rank in range(2)]
    assert [int(r["computed"]) for r in ranks] == [2, 2]  # four self-replay samples, halved
    assert len(list(folder.glob("*.npz"))) == 4
    for n in range(4):  # the same targets on both ranks, though each rank's base differs
        np.testing.assert_array_equal(ranks[0][f"ids{n}"], ranks[1][f"ids{n}"])
        np.testing.assert_array_equal(ranks[0][f"logp{n}"], ranks[1][f"logp{n}"])


def test_kl_is_zero_at_the_base_and_grows_as_the_adapter_moves(
    stories_dir: Path, tokenizer: Any
) -> None:
    import torch

    from labdesk.train.torch_backend import summed_loss, with_lora

    base, items = base_and_targets(stories_dir, tokenizer)
    model = with_lora(base, tiny_recipe(stories_dir).train, None)
    own = collate(items[:4], [[0, 1], [2, 3]])
    at_base = summed_loss(model, own, "cpu")
    at_base.backward()
    at_base = at_base.detach()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert abs(float(at_base)) < 1e-4
    assert max(float(g.abs().max()) for g in grads) < 1e-4  # nothing to pull back yet

    with torch.no_grad():
        hard = collate([replace(t, soft=None) for t in items[:4]], [[0, 1], [2, 3]])
        assert float(summed_loss(model, hard, "cpu")) > 1.0  # cross-entropy would still push
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
        moved = float(summed_loss(model, own, "cpu"))
        assert moved > 1e-2
        mixed = collate(items, [[0, 4], [1, 2, 3, 5]])  # soft and hard samples in one row
        both = float(summed_loss(model, mixed, "cpu"))
        plain = float(summed_loss(model, collate(items[4:], [[0, 1]]), "cpu"))
    assert both == pytest.approx(moved + plain, rel=1e-4)


def test_mlx_learns_the_same_distribution(
    stories_dir: Path, tokenizer: Any, tmp_path: Path
) -> None:
    pytest.importorskip("mlx.core", reason="mlx is not installed (pip install 'mlx-lm[cpu]')")
    import torch

    from labdesk.train import mlx_backend
    from labdesk.train.torch_backend import summed_loss, with_lora

    recipe = tiny_recipe(stories_dir)
    recipe.train.lora_dropout = 0.0
    model, keys = mlx_backend.load_model(stories_dir, recipe.train)
    logprobs = mlx_backend.base_logprobs(model)
    own_targets = with_base_targets(replay_items(tokenizer), "distribution", logprobs)
    stepper = mlx_backend.MlxStepper(model, keys, recipe.train, str(stories_dir))
    own = collate(own_targets[:4], [[0, 1], [2, 3]])
    assert abs(stepper.micro(own, own.loss_tokens)) < 1e-4

    base, items = base_and_targets(stories_dir, tokenizer)
    tuned = with_lora(base, recipe.train, None)
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    tuned.save_pretrained(str(tmp_path / "adapter"))
    stepper.load_peft_adapter(tmp_path / "adapter")
    batch = collate(items, [[0, 4], [1, 2, 3, 5]])
    with torch.no_grad():
        expected = float(summed_loss(tuned, batch, "cpu")) / batch.loss_tokens
    assert stepper.micro(batch, batch.loss_tokens) == pytest.approx(expected, rel=1e-3)


def own_answers(stories_dir: Path, tokenizer: Any, count: int) -> list[dict[str, Any]]:
    """The base model's own greedy answers to general prompts: real self-replay samples."""
    import torch
    from transformers import AutoModelForCausalLM

    from labdesk.train.replay import general_prompts

    base = AutoModelForCausalLM.from_pretrained(str(stories_dir), dtype=torch.float32)
    out: list[dict[str, Any]] = []
    for prompt in general_prompts()[:count]:
        head = [{"role": "system", "content": "You help."}, {"role": "user", "content": prompt}]
        ids = tokenizer.apply_chat_template(head, add_generation_prompt=True, return_tensors="pt")
        ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
        made = base.generate(ids, max_new_tokens=16, do_sample=False)[0, ids.shape[1] :]  # type: ignore[misc]
        answer = tokenizer.decode(made, skip_special_tokens=True).strip()
        meta = {"id": f"own{len(out)}", "type": "self_replay", "train_on": "assistant"}
        out.append(
            {"messages": [*head, {"role": "assistant", "content": answer}], "metadata": meta}
        )
    return out


@pytest.mark.parametrize("backend", ["torch", "mlx"])
def test_distribution_replay_keeps_the_base_closer_than_answer_replay(
    stories_dir: Path, tokenizer: Any, tmp_path: Path, backend: str
) -> None:
    """Trained on new facts with the base's own answers, the student stays nearer the base on
    those prompts when it learns the base's distribution than when it learns the answer text."""
    if backend == "mlx":
        pytest.importorskip("mlx.core", reason="mlx is not installed (pip install 'mlx-lm[cpu]')")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from labdesk.train.phases import phase_trainer

    phases, _ = mix(knowledge_samples(), MixSettings(), "You help.")
    own = own_answers(stories_dir, tokenizer, 12)
    samples = phases["knowledge_1"] + own
    probe = tokenize_dataset(tokenizer, own, 512, "drop")
    base = AutoModelForCausalLM.from_pretrained(str(stories_dir), dtype=torch.float32).eval()

    def drift(adapter: Path) -> float:
        """Mean KL(base ‖ tuned) over the answer tokens of the replay prompts."""
        tuned = PeftModel.from_pretrained(base, str(adapter)).eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for item in probe:
                ids = torch.tensor([item.input_ids])
                at = torch.tensor(item.predicting)
                with tuned.disable_adapter():
                    p = torch.log_softmax(tuned(input_ids=ids).logits[0, at], -1)
                q = torch.log_softmax(tuned(input_ids=ids).logits[0, at], -1)
                total += float((p.exp() * (p - q)).sum())
                count += len(at)
        return total / count

    drifts = {}
    for targets in ("distribution", "answers"):
        recipe = tiny_recipe(stories_dir, backend=backend, self_replay_targets=targets)
        phase = recipe.train.phases[0].model_copy(update={"epochs": 4})
        events: list[Any] = []
        folder = tmp_path / targets
        phase_trainer(backend)(
            stories_dir, samples, phase, recipe.train, folder, None, events.append
        )
        said = [e.message for e in events if "base model's distribution" in (e.message or "")]
        assert bool(said) == (targets == "distribution"), said
        drifts[targets] = drift(folder / "adapter")
    assert drifts["distribution"] < drifts["answers"], drifts
