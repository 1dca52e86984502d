"""Curriculum config and level table: MAPush defaults, generated tables, and one clear error per bad field."""

import pytest
import torch
import yaml
from pydantic import ValidationError

from curriculum import CurriculumConfig, CurriculumConfigError, build_level_table
from mapush_rllib.sim.config import PhysicsConfig
from mapush_rllib.sim.schema import format_validation_error
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.task_params import TaskParamError, TaskParams


def load(text: str) -> CurriculumConfig:
    return CurriculumConfig.model_validate(yaml.safe_load(text))


def config_error(text: str) -> str:
    with pytest.raises(ValidationError) as info:
        load(text)
    message = format_validation_error(info.value, "curriculum")
    assert len(message.splitlines()) == 1, message
    return message


def table_error(config: CurriculumConfig, task: TaskConfig | None = None) -> str:
    with pytest.raises(CurriculumConfigError) as info:
        build_level_table(config, task or TaskConfig(), PhysicsConfig())
    return str(info.value)


def test_default_table_runs_from_easy_start_to_the_full_mapush_task():
    table = build_level_table(CurriculumConfig(), TaskConfig(), PhysicsConfig())
    assert table.num_levels == 8
    values = table.as_tensor()  # (levels + full task, 6)
    shift = 0.4 / 2**0.5  # the box half-diagonal shrinks by this from 1.2 m to 0.8 m, and so does the spawn radius
    assert values[0].tolist() == pytest.approx([1.1, 1.5, 0.8, 4.0 * (0.8 / 1.2) ** 2, 1.2 - shift, 1.3 - shift])
    # The top level and the eval slice's row are exactly the task config's task.
    full = torch.tensor([1.5, 3.0, 1.2, 4.0, 1.2, 1.3])
    assert torch.equal(values[7], full)
    assert torch.equal(values[table.full_task_row], full)
    # Every difficulty column is non-decreasing; mass follows size (areal density constant).
    assert (values[1:8] >= values[:7]).all()
    assert torch.allclose(values[:8, 3] / values[:8, 2] ** 2, torch.full((8,), 4.0 / 1.44))


def test_generated_table_can_go_beyond_the_full_task_and_explicit_mass_is_kept():
    config = load("""
        start: {target_distance_m: [1.1, 1.5], box_size_m: 0.8}
        end: {target_distance_m: [2.0, 4.0], box_size_m: 1.6, box_mass_kg: 12.0}
        num_levels: 3
    """)
    values = build_level_table(config, TaskConfig(), PhysicsConfig()).as_tensor()
    assert values[2, :4].tolist() == pytest.approx([2.0, 4.0, 1.6, 12.0])
    assert values[3, :4].tolist() == pytest.approx([1.5, 3.0, 1.2, 4.0])  # the eval slice still runs MAPush
    assert values[0, 3] < values[1, 3] < values[2, 3]


def test_explicit_levels_and_a_yaml_round_trip():
    text = """
        rule: learnability
        levels:
          - {target_distance_m: [1.1, 1.3], box_size_m: 0.8}
          - {target_distance_m: [1.2, 2.0], box_size_m: 1.0, spawn_radius_m: [1.1, 1.2]}
          - {target_distance_m: [1.5, 3.0], box_size_m: 1.2}
        eval_fraction: 0.1
    """
    config = load(text)
    assert load(yaml.safe_dump(config.model_dump(mode="json"))) == config
    values = build_level_table(config, TaskConfig(), PhysicsConfig()).as_tensor()
    assert values[1, 4:].tolist() == pytest.approx([1.1, 1.2])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "levels: [{target_distance_m: [1.2, 2], box_size_m: 1.0}, {target_distance_m: [1.2, 2], box_size_m: 0.9}]",
            "levels.1.box_size_m: 0.9 is below levels.0's 1",
        ),
        (
            "levels: [{target_distance_m: [1.3, 2], box_size_m: 1.0}, {target_distance_m: [1.2, 2], box_size_m: 1.0}]",
            "levels.1.target_distance_m: low 1.2 is below levels.0's 1.3",
        ),
        (
            "levels: [{target_distance_m: [1.2, 2], box_size_m: 1.0, box_mass_kg: 5}, "
            "{target_distance_m: [1.2, 2], box_size_m: 1.0}]",
            "levels.1.box_mass_kg",
        ),
        ("end: {target_distance_m: [1.0, 1.2], box_size_m: 0.8}", "end.target_distance_m: low 1 is below start's 1.1"),
        ("levels: [{target_distance_m: [1.2, 2], box_size_m: 4.5}]", "curriculum.levels.0.box_size_m"),
        ("start: {target_distance_m: [2.0, 1.5], box_size_m: 1.0}", "target_distance_m: low 2.0 is larger than high"),
        ("promote_success_rate: 0.2", "curriculum.demote_success_rate: 0.25 must be below promote_success_rate 0.2"),
        ("min_episodes: 5", "curriculum.min_episodes: 5 exceeds window_episodes 4"),
        ("initial_level_max: 8", "curriculum.initial_level_max: 8 is not a level"),
        ("eval_fraction: 1.0", "curriculum.eval_fraction"),
        ("rule: alp_gmm", "curriculum.rule"),
        ("promote_threshold: 0.8", "curriculum.promote_threshold: Extra inputs are not permitted"),
        ("levels: [{target_distance_m: [1.2, 2], box_size_m: 1.0}]\nnum_levels: 3", "give either levels or"),
    ],
)
def test_invalid_config_gets_one_error_naming_the_field(text, expected):
    assert expected in config_error(text)


def test_table_rules_name_the_curriculum_field():
    near = load("levels: [{target_distance_m: [0.9, 1.5], box_size_m: 0.8}]")
    assert table_error(near).startswith("curriculum.levels.0.target_distance_m: [0.9, 1.5] is invalid: low must")
    cramped = load("start: {target_distance_m: [1.1, 1.5], box_size_m: 1.0, spawn_radius_m: [0.8, 1.0]}")
    assert table_error(cramped).startswith("curriculum.start.spawn_radius_m: [0.8, 1.0] is invalid: low must be")
    # A start harder than the task it grows into (the task config, end: null).
    hard_start = load("start: {target_distance_m: [1.6, 3.2], box_size_m: 1.2}")
    assert table_error(hard_start).startswith("task.target_distance_m: low 1.5 is below curriculum.start's 1.6")
    # The success radius comes from the task config: a start valid for MAPush's 1 m radius is not for 1.2 m.
    assert "curriculum.start.target_distance_m" in table_error(CurriculumConfig(), TaskConfig(success_radius_m=1.2))


@pytest.mark.parametrize(
    "level",
    [
        {"target_distance_m": (0.9, 1.5), "box_size_m": 0.8},  # target inside the success radius
        {"target_distance_m": (1.2, 1.5), "box_size_m": 1.0, "spawn_radius_m": (0.8, 1.0)},  # agents in the box
        {"target_distance_m": (1.2, 1.5), "box_size_m": 1.0, "spawn_radius_m": (1.1, 1.2)},  # valid
    ],
)
def test_curriculum_and_simulator_accept_exactly_the_same_levels(level):
    """Both go through task_param_violations, so a level the table accepts is one the simulator accepts."""
    config = CurriculumConfig(levels=[level])
    try:
        values = build_level_table(config, TaskConfig(), PhysicsConfig()).params(torch.tensor([0]))
    except CurriculumConfigError as error:
        curriculum_rule = str(error).split(" is invalid: ")[1]
    else:
        curriculum_rule = None
    params = TaskParams(1, TaskConfig(), PhysicsConfig(), torch.device("cpu"))
    spawn = level.get("spawn_radius_m", (1.2, 1.3))
    try:
        params.set(torch.tensor([0]), target_distance_m=list(level["target_distance_m"]),
                   box_size_m=level["box_size_m"], box_mass_kg=1.0, spawn_radius_m=list(spawn))
    except TaskParamError as error:
        simulator_rule = str(error).split(": ", 2)[2]
    else:
        simulator_rule = None
        assert params.box_size_m.tolist() == pytest.approx(values["box_size_m"].tolist())
    assert curriculum_rule == simulator_rule
