from __future__ import annotations

from pathlib import Path

from labdesk.flow import set_aside


def test_old_outputs_are_moved_aside_never_deleted(tmp_path: Path) -> None:
    train = tmp_path / "train"
    assert set_aside(train) is None  # nothing to keep
    for generation in (1, 2):
        (train / "knowledge_1").mkdir(parents=True)
        (train / "knowledge_1" / "step.json").write_text(str(generation))
        kept = set_aside(train)
        assert kept == tmp_path / f"train.old-{generation}"
        assert (kept / "knowledge_1" / "step.json").read_text() == str(generation)
        assert not train.exists()
