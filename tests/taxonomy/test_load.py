"""Loading a taxonomy folder into typed leaves, with content-hash identities."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labdesk.errors import TaxonomyError
from labdesk.resources import data_dir
from labdesk.taxonomy import load_taxonomy

HAIKU = "compositional_skills/writing/freeform/haiku"
ACTIONS = "compositional_skills/extraction/grounded/meeting_action_items"


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    root = tmp_path / "taxonomy"
    shutil.copytree(data_dir("taxonomy"), root)
    return root


def test_sample_skills_load_as_typed_leaves(sample: Path) -> None:
    taxonomy = load_taxonomy(sample)
    assert not taxonomy.errors, taxonomy.errors
    haiku = taxonomy.leaf(HAIKU)
    assert haiku.kind == "freeform_skill"
    assert haiku.version == 3
    assert haiku.file == sample / HAIKU / "qna.yaml"
    assert len(haiku.seeds) == 6
    assert all(len(seed.qa) == 1 and seed.context is None for seed in haiku.seeds)
    assert haiku.seeds[0].qa[0].question.startswith("Write a haiku about a morning commute")
    assert haiku.slug == HAIKU.replace("/", "__")

    grounded = taxonomy.leaf(ACTIONS + "/qna.yaml")
    assert grounded.kind == "grounded_skill"
    assert all(seed.context for seed in grounded.seeds)
    assert "Ana will send the revised budget" in (grounded.seeds[0].context or "")
    assert [leaf.path for leaf in taxonomy.leaves] == sorted(leaf.path for leaf in taxonomy.leaves)


def test_content_hash_ignores_layout_but_follows_content(sample: Path) -> None:
    file = sample / HAIKU / "qna.yaml"
    before = load_taxonomy(sample).leaf(HAIKU).content_hash
    text = file.read_text()
    file.write_text("# a comment changes nothing\n" + text)
    assert load_taxonomy(sample).leaf(HAIKU).content_hash == before
    file.write_text(text.replace("Cold handlebars hum", "Cold handlebars sing"))
    changed = load_taxonomy(sample).leaf(HAIKU).content_hash
    assert changed != before and len(changed) == 64


def test_invalid_leaves_are_problems_not_leaves(sample: Path) -> None:
    broken = sample / "compositional_skills" / "broken" / "qna.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text("version: 3\ncreated_by: me\nseed_examples: []\n")
    misnamed = sample / "compositional_skills" / "misnamed" / "qna.yml"
    misnamed.parent.mkdir(parents=True)
    misnamed.write_text("version: 3\n")
    taxonomy = load_taxonomy(sample)
    assert {leaf.path for leaf in taxonomy.leaves} >= {HAIKU, ACTIONS}
    assert "compositional_skills/broken" not in {leaf.path for leaf in taxonomy.leaves}
    by_file = {Path(p.file).parent.name for p in taxonomy.errors}
    assert by_file == {"broken", "misnamed"}
    missing = [p for p in taxonomy.errors if p.yaml_path == "."]
    assert any("task_description" in p.message for p in missing)
    with pytest.raises(TaxonomyError, match="no valid leaf"):
        taxonomy.leaf("compositional_skills/broken")


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TaxonomyError, match="not found"):
        load_taxonomy(tmp_path / "nope")
