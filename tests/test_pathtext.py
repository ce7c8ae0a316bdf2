"""Long leaf paths in narrow columns keep the end that tells leaves apart."""

from __future__ import annotations

from labdesk.pathtext import tail_path

LEAF = "compositional_skills/extraction/grounded/meeting_action_items"


def test_long_paths_keep_their_distinguishing_end() -> None:
    assert tail_path(LEAF, 80) == LEAF
    assert tail_path(LEAF, 40) == "…/grounded/meeting_action_items"
    assert tail_path(LEAF, 24) == "…/meeting_action_items"
    assert tail_path(LEAF, 20) == "meeting_action_items"  # the last part alone when only it fits
    assert tail_path(LEAF, 12) == "…ction_items"
    for width in range(1, 70):
        assert len(tail_path(LEAF, width)) <= width
    # three leaves under one folder stay apart however narrow the column
    leaves = [f"compositional_skills/writing/freeform/{name}" for name in ("haiku", "limerick")]
    assert len({tail_path(leaf, 10) for leaf in leaves}) == 2
