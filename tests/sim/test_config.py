"""Config schemas: unknown keys, wrong types and impossible ranges fail with a message naming the field."""

import pytest
from pydantic import ValidationError

from mapush_rllib.sim.config import SimConfig
from mapush_rllib.sim.schema import format_validation_error
from mapush_rllib.task.config import RewardConfig, TaskConfig


def message(model, data):
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return format_validation_error(info.value)


def test_defaults_are_the_mapush_spec():
    task, sim, rewards = TaskConfig(), SimConfig(), RewardConfig()
    assert task.target_distance_m == (1.5, 3.0) and task.box_size_m == 1.2 and task.box_mass_kg == 4.0
    assert task.spawn_radius_m == (1.2, 1.3) and task.success_radius_m == 1.0 and task.episode_length_s == 20.0
    assert sim.physics.policy_dt_s == pytest.approx(0.02) and sim.physics.box_friction_range == (0.5, 0.6)
    assert rewards.scale_table()[0] == [10.0, -5.0, 0.00325, 0.00075, -0.0025, 0.0015, 0.004, 0.0, 0.0]  # ours off


@pytest.mark.parametrize(
    "model, data, expected",
    [
        (TaskConfig, {"target_distance": [1, 2]}, "target_distance: Extra inputs are not permitted"),
        (TaskConfig, {"box_size_m": "big"}, "box_size_m: Input should be a valid number (got 'big')"),
        (TaskConfig, {"box_size_m": -1.0}, "box_size_m: Input should be greater than 0"),
        (TaskConfig, {"target_distance_m": [3.0, 1.5]}, "target_distance_m: low 3.0 is larger than high 1.5"),
        (TaskConfig, {"target_distance_m": [1.5]}, "target_distance_m.1: Field required"),
        (SimConfig, {"num_envs": 0}, "num_envs: Input should be greater than or equal to 1"),
        (SimConfig, {"num_envs": 64.5}, "num_envs: Input should be a valid integer"),
        (SimConfig, {"backend": "bullet"}, "backend: Input should be 'mujoco'"),
        (SimConfig, {"physics": {"substeps": "4"}}, "physics.substeps: Input should be a valid integer"),
        (RewardConfig, {"scales": {"ocb": "high"}}, "scales.ocb: Input should be a valid number"),
        (RewardConfig, {"scales": {"speed": 1.0}}, "scales.speed: Extra inputs are not permitted"),
        (RewardConfig, {"per_agent_scales": {"agent_0": {"bogus": 1.0}}}, "unknown reward term(s) ['bogus']"),
        (RewardConfig, {"per_agent_scales": {"agent_7": {"ocb": 1.0}}}, "per_agent_scales.agent_7"),
        (RewardConfig, {"attribution": "fair"}, "attribution: Input should be 'shared' or 'contribution'"),
    ],
)
def test_bad_config_names_the_field(model, data, expected):
    assert expected in message(model, data)
