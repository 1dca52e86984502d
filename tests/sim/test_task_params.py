"""Per-env task parameters: validation errors name the field; changes apply at the env's next reset."""

import pytest
import torch

from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.task_params import TaskParamError
from mapush_rllib.task.vec_env import MAPushVecEnv


@pytest.fixture
def env():
    return MAPushVecEnv(SimConfig(num_envs=4, num_threads=1), seed=0)


@pytest.mark.parametrize(
    "values, field",
    [
        ({"box_size_m": -0.5}, "box_size_m"),
        ({"box_size_m": 9.0}, "box_size_m"),
        ({"box_mass_kg": 0.0}, "box_mass_kg"),
        ({"target_distance_m": [3.0, 2.0]}, "target_distance_m"),
        ({"target_distance_m": [0.5, 2.0]}, "target_distance_m"),  # starts inside the 1 m success radius
        ({"spawn_radius_m": [1.4, 1.3]}, "spawn_radius_m"),
        ({"spawn_radius_m": [0.9, 1.0]}, "spawn_radius_m"),  # agents would spawn inside the 1.2 m box
        ({"box_size_m": 2.0}, "spawn_radius_m"),  # a bigger box needs a wider spawn circle
    ],
)
def test_bad_task_parameters_name_the_field_and_change_nothing(env, values, field):
    before = {k: getattr(env.task, k).clone() for k in ("box_size_m", "target_distance_m", "spawn_radius_m")}
    with pytest.raises(TaskParamError, match=field):
        env.set_task_params([1, 2], **values)
    for key, value in before.items():
        torch.testing.assert_close(getattr(env.task, key), value)


def test_unknown_or_misshapen_parameters(env):
    with pytest.raises(TaskParamError, match=r"unknown task parameter\(s\) \['box_colour'\]"):
        env.set_task_params([0], box_colour=1.0)
    with pytest.raises(TaskParamError, match="target_distance_m: expected shape"):
        env.set_task_params([0, 1], target_distance_m=[1.5, 2.0, 2.5])


def test_changes_apply_at_the_next_reset_of_that_env_only(env):
    env.set_task_params([0], box_size_m=0.8, target_distance_m=[1.2, 1.3], spawn_radius_m=[1.0, 1.1])
    half_size = lambda: env.backend._geom_size[:, env.backend._box_geom, 0].copy()  # noqa: E731
    assert half_size().tolist() == pytest.approx([0.6] * 4), "not before the reset"
    env.reset()
    assert half_size().tolist() == pytest.approx([0.4, 0.6, 0.6, 0.6])
    target = env.state[0, 3:5].norm().item()
    agents = env.state[0, 5:].reshape(2, 6)[:, :2].norm(dim=1)
    assert 1.2 <= target <= 1.3 and ((agents >= 1.0 - 1e-4) & (agents <= 1.1 + 1e-4)).all()
    assert env.backend._body_mass[0, env.backend._box_body] == pytest.approx(4.0), "mass fixed by the config"


def test_mass_follows_size_when_configured():
    env = MAPushVecEnv(SimConfig(num_envs=2, num_threads=1), TaskConfig(box_mass_kg=None), seed=0)
    env.set_task_params([1], box_size_m=0.6, spawn_radius_m=[0.8, 0.9])
    env.reset()
    masses = env.backend._body_mass[:, env.backend._box_body]
    assert masses.tolist() == pytest.approx([4.0, 1.0]), "4 kg at 1.2 m, a quarter of the area at 0.6 m"


def test_smaller_box_is_physically_smaller(env):
    env.set_task_params([0], box_size_m=0.6, spawn_radius_m=[0.8, 0.9])
    env.reset()
    # An agent driving at the box along +x stops at the face: 0.3 m from the centre for the small box.
    env.backend.reset_envs([0, 1], [[0, 0, 0.25, 0]] * 2, [[[-2.0, 0, 0], [40, 40, 0]]] * 2, torch.zeros(2, 2, 3))
    env.backend.set_box([0, 1], [[0.6, 0.6, 0.5], [1.2, 1.2, 0.5]], [400.0, 400.0], [0.6, 0.6])
    commands = torch.zeros(4, 2, 3)
    commands[:, 0, 0] = 0.5
    for _ in range(200):
        env.backend.step(commands.numpy())
    nose = env.backend.state()["agent_pos"][:2, 0, 0] + 0.3
    assert nose.tolist() == pytest.approx([-0.3, -0.6], abs=0.03)


def test_box_changes_reach_envs_that_reset_later(env):
    """The auto-reset path resets a few envs at a time; a box set for an env waits for that env's reset."""
    half_size = lambda: env.backend._geom_size[:, env.backend._box_geom, 0].tolist()  # noqa: E731
    env.set_task_params([0, 2], box_size_m=0.8, spawn_radius_m=[1.0, 1.1])
    env._reset_envs(torch.tensor([0, 1]), outcome=None)
    assert half_size() == pytest.approx([0.4, 0.6, 0.6, 0.6])
    env._reset_envs(torch.tensor([3]), outcome=None)
    assert half_size() == pytest.approx([0.4, 0.6, 0.6, 0.6])
    env._reset_envs(torch.tensor([2]), outcome=None)
    assert half_size() == pytest.approx([0.4, 0.6, 0.4, 0.6])


def test_trusted_values_are_set_without_the_check(env):
    """Values from an already-checked source (a curriculum's level table) skip the per-reset check."""
    version = env.task.box_version
    env.task.set(torch.tensor([1]), trusted=True, box_size_m=0.8)
    assert env.task.box_size_m.tolist() == pytest.approx([1.2, 0.8, 1.2, 1.2])
    assert env.task.box_version == version + 1
    env.task.set(torch.tensor([1]), target_distance_m=[1.5, 2.0])
    assert env.task.box_version == version + 1, "a change that leaves the box alone"
