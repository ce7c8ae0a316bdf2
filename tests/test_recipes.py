from __future__ import annotations

from pathlib import Path

import pytest

from labdesk.errors import ConfigError
from labdesk.recipes import available_recipes, load_recipe


def test_every_packaged_recipe_loads() -> None:
    recipes = available_recipes()
    assert "demo" in recipes
    for name in recipes:
        recipe = load_recipe(name)
        assert recipe.name == name
        assert recipe.source == recipes[name]


def test_override_sets_nested_field() -> None:
    recipe = load_recipe("tiny", ["train.phases.1.learning_rate=5e-5", "generate.seed=7"])
    assert recipe.train.phases[1].learning_rate == 5e-5
    assert recipe.generate.seed == 7


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_unknown_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: x\nteacher: {builtin: tiny-teacher}\nstudent: {builtin: tiny-student}\n"
        "generate:\n  samples_per_leaf: 3\n  sampels: 4\n",
    )
    with pytest.raises(ConfigError) as info:
        load_recipe(str(path))
    assert info.value.where == f"{path}:6:12"
    assert "generate.sampels" in info.value.message
    assert "no such field" in info.value.message and "samples_per_leaf" in info.value.message


def test_mistyped_field_is_reported_at_its_value(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "name: x\nteacher: {builtin: tiny-teacher}\nstudent: {builtin: tiny-student}\n"
        "train:\n  lora_rank: sixteen\n",
    )
    with pytest.raises(ConfigError) as info:
        load_recipe(str(path))
    assert info.value.where == f"{path}:5:14"
    assert "train.lora_rank" in info.value.message


def test_repo_model_must_be_pinned(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "name: x\nteacher: {repo: a/b, file: m.gguf}\nstudent: {builtin: tiny-student}\n"
    )
    with pytest.raises(ConfigError, match="pinned `revision`"):
        load_recipe(str(path))


def test_set_on_a_model_source_replaces_the_whole_reference() -> None:
    """The README's `--set teacher.path=...` on a recipe whose teacher is a pinned repo."""
    recipe = load_recipe("cpu", ["teacher.path=/models/t.gguf"])
    assert recipe.teacher.path == "/models/t.gguf"
    assert recipe.teacher.repo is recipe.teacher.file is recipe.teacher.revision is None
    # a second --set on the same source adds to it instead of starting over
    pinned = load_recipe(
        "tiny",
        ["student.repo=org/model", "student.revision=" + "a" * 40, "student.file=m.gguf"],
    )
    assert (pinned.student.repo, pinned.student.file) == ("org/model", "m.gguf")
    assert pinned.student.builtin is None


def test_set_errors_name_the_flag_and_the_nearest_field() -> None:
    with pytest.raises(ConfigError) as info:
        load_recipe("tiny", ["generate.samples_per_lef=3"])
    assert info.value.where == "--set generate.samples_per_lef=3"
    assert "did you mean `samples_per_leaf`" in info.value.message
    with pytest.raises(ConfigError) as info:
        load_recipe("tiny", ["train.lora_rank=sixteen"])
    assert info.value.where == "--set train.lora_rank=sixteen"
    assert "train.lora_rank" in info.value.message
    assert info.value.hint == "see the field list with `labdesk recipes show tiny`"
    with pytest.raises(ConfigError) as info:  # a repo needs its pin: named at the flag
        load_recipe("tiny", ["teacher.repo=org/model"])
    assert info.value.where == "--set teacher.repo=org/model" and "revision" in info.value.message
    with pytest.raises(ConfigError) as info:
        load_recipe("tiny", ["train.phases.7.epochs=2"])
    assert info.value.where == "--set train.phases.7.epochs=2" and "0 to 2" in info.value.message
    for bad in ("samples_per_leaf", "generate.seed=[1"):
        with pytest.raises(ConfigError) as info:
            load_recipe("tiny", [bad])
        assert info.value.where == f"--set {bad}"


def test_broken_yaml_and_unknown_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(str(path))
    with pytest.raises(ConfigError, match="no recipe named"):
        load_recipe("no-such-recipe")


def test_a_teacher_behind_an_endpoint_names_its_model(tmp_path: Path) -> None:
    recipe = load_recipe(
        "tiny",
        [
            "teacher.endpoint=http://127.0.0.1:8080/v1",
            "teacher.model=granite",
            "teacher.api_key_env=MY_KEY",
        ],
    )
    assert recipe.teacher.builtin is None and recipe.teacher.label() == (
        "granite at http://127.0.0.1:8080/v1"
    )
    with pytest.raises(ConfigError, match="with the `model` it serves"):
        load_recipe("tiny", ["teacher.endpoint=http://127.0.0.1:8080/v1"])
    with pytest.raises(ConfigError, match="with the `model` it serves"):
        load_recipe("tiny", ["teacher.endpoint=127.0.0.1:8080", "teacher.model=m"])
    with pytest.raises(ConfigError, match="go with `endpoint`"):
        load_recipe("tiny", ["teacher.api_key_env=MY_KEY"])
    served_student = ["student.endpoint=http://127.0.0.1:8080/v1", "student.model=m"]
    with pytest.raises(ConfigError, match="the student is trained here"):
        load_recipe("tiny", served_student)
