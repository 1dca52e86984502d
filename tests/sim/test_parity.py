"""MAPush parity: observation layout and frames, action scaling, reset distributions, termination (spec §1-§2).

Scenes are set by teleporting bodies in the real simulator (`backend.reset_envs`), then taking real steps.
"""

import math

import numpy as np
import pytest
import torch

from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.vec_env import MAPushVecEnv

BOX_Z = 0.25
FAR = 40.0


def make_env(num_envs=2, **task):
    return MAPushVecEnv(SimConfig(num_envs=num_envs, num_threads=1), TaskConfig(**task), seed=0)


def teleport(env, env_id, box_xyz_yaw, agents, target_xy):
    """Put env `env_id` in a given static scene (box and agents at rest)."""
    env.backend.reset_envs([env_id], np.array([box_xyz_yaw]), np.array([agents]), np.zeros((1, 2, 3)))
    env.target_xy[env_id] = torch.tensor(target_xy)
    env.prev_distance[env_id] = (torch.tensor(box_xyz_yaw[:2]) - env.target_xy[env_id]).norm()


def test_observation_layout_and_egocentric_frames():
    env = make_env()
    teleport(env, 0, [0.0, 0.0, BOX_Z, 0.3], [[1.0, 0.0, math.pi / 2], [-1.2, 0.5, 0.0]], [2.0, 2.0])
    result = env.step(torch.zeros(2, 2, 3))  # zero command: everything stays at rest
    # Agent 0 at (1, 0) facing +y: a world vector (x, y) appears as (y, -x).
    expected_0 = [2.0, -1.0, 0.0, 1.0, (0.3 - math.pi / 2) % (2 * math.pi), 0.5, 2.2, 3 * math.pi / 2]
    # Agent 1 at (-1.2, 0.5) facing +x: world vectors unchanged.
    expected_1 = [3.2, 1.5, 1.2, -0.5, 0.3, 2.2, -0.5, math.pi / 2]
    torch.testing.assert_close(result.obs[0], torch.tensor([expected_0, expected_1]), atol=2e-3, rtol=0)


def test_relative_yaws_wrap_into_zero_two_pi():
    env = make_env()
    teleport(env, 0, [0.0, 0.0, BOX_Z, 0.1], [[1.5, 0.0, 6.0], [-1.5, 0.0, 0.2]], [2.0, 2.0])
    obs = env.step(torch.zeros(2, 2, 3)).obs[0]
    assert 0 <= obs[:, 4].min() and obs[:, 4].max() < 2 * math.pi
    assert obs[0, 4].item() == pytest.approx((0.1 - 6.0) % (2 * math.pi), abs=2e-3)  # wraps past 0


def test_action_is_half_of_clipped_policy_output():
    env = make_env()
    for e in range(2):
        teleport(env, e, [0.0, 0.0, BOX_Z, 0.0], [[FAR, FAR, 0.4], [-FAR, FAR, 0.0]], [2.0, 2.0])
    actions = torch.tensor([[[3.0, -0.4, 1.0], [0.2, 7.0, -5.0]], [[0.0, 0.0, 0.0], [-1.0, -1.0, -1.0]]])
    for _ in range(30):
        result = env.step(actions)
    expected = 0.5 * actions.clamp(-1, 1)
    state = result.state.view(2, -1)[:, 5:].reshape(2, 2, 6)  # per agent: x, y, yaw, body vx, vy, yaw rate
    torch.testing.assert_close(state[..., 3:6], expected, atol=0.015, rtol=0.05)


def test_reset_distributions_match_the_spec():
    env = make_env(num_envs=2000)
    state = env.state  # global state after the initial reset
    box_yaw, target = state[:, 2], state[:, 3:5]
    agents = state[:, 5:].reshape(-1, 2, 6)
    assert box_yaw.min() >= 0 and box_yaw.max() < 2 * math.pi
    assert box_yaw.mean().item() == pytest.approx(math.pi, abs=0.15)
    distance = target.norm(dim=1)
    assert distance.min() >= 1.5 - 1e-4 and distance.max() <= 3.0 + 1e-4
    assert distance.mean().item() == pytest.approx(2.25, abs=0.05)
    bearing = torch.atan2(target[:, 1], target[:, 0])
    assert bearing.cos().mean().abs() < 0.06 and bearing.sin().mean().abs() < 0.06  # uniform direction
    radius = agents[..., :2].norm(dim=-1)
    assert radius.min() >= 1.2 - 1e-4 and radius.max() <= 1.3 + 1e-4
    separation = (agents[:, 0, :2] - agents[:, 1, :2]).norm(dim=-1)
    assert separation.min() > math.hypot(0.6, 0.3), "spawned agents must never overlap (MAPush quirk fixed)"
    speeds = agents[..., 3:6].abs()
    assert speeds[..., :2].norm(dim=-1).max() <= 0.1 * math.sqrt(2) + 1e-4 and speeds[..., 2].max() <= 0.1 + 1e-4
    box_z = env.backend.state()["box_pos"][:, 2]
    np.testing.assert_allclose(box_z, BOX_Z, atol=1e-6)


def test_success_when_box_within_one_metre_gives_terminal_obs_and_reach_bonus():
    env = make_env()
    teleport(env, 0, [0.0, 0.0, BOX_Z, 0.0], [[-FAR, 0.0, 0.0], [FAR, 0.0, 0.0]], [0.95, 0.0])
    teleport(env, 1, [0.0, 0.0, BOX_Z, 0.0], [[-FAR, 0.0, 0.0], [FAR, 0.0, 0.0]], [1.05, 0.0])
    result = env.step(torch.zeros(2, 2, 3))
    assert result.success.tolist() == [True, False]
    assert result.terminated.tolist() == [True, False] and not result.truncated.any()
    reach = result.reward_terms[..., 0]
    assert reach[0].tolist() == [10.0, 10.0] and reach[1].tolist() == [0.0, 0.0]
    assert result.obs[0, 0, 0].item() == pytest.approx(FAR + 0.95, abs=1e-3), "terminal obs of the old episode"
    assert not torch.allclose(result.next_obs[0], result.obs[0]), "next_obs starts the new episode"
    torch.testing.assert_close(result.next_obs[1], result.obs[1])
    assert result.episodes is not None and result.episodes.env_ids.tolist() == [0]
    assert result.episodes.success.tolist() == [True]
    assert result.episodes.finish_time_s.tolist() == pytest.approx([0.02])


def test_dense_rewards_of_the_done_step_use_the_pre_reset_state():
    env = make_env()
    teleport(env, 0, [0.0, 0.0, BOX_Z, 0.0], [[-FAR, 0.0, 0.0], [FAR, 0.0, 0.0]], [0.95, 0.0])
    result = env.step(torch.zeros(2, 2, 3))
    # approach_to_box: -(d + 0.5)^2 with the agents FAR away in the *old* episode.
    d = math.hypot(FAR, 0.2 - BOX_Z)
    expected = -0.00075 * (d + 0.5) ** 2
    assert result.reward_terms[0, :, 3].tolist() == pytest.approx([expected, expected], rel=1e-4)


def test_exception_when_agents_closer_than_25cm():
    env = make_env()
    teleport(env, 0, [0.0, 0.0, BOX_Z, 0.0], [[3.0, 3.0, 0.0], [3.0, 3.1, 0.0]], [2.0, 0.0])  # overlapping
    teleport(env, 1, [0.0, 0.0, BOX_Z, 0.0], [[3.0, 3.0, 0.0], [3.0, 3.4, 0.0]], [2.0, 0.0])  # side by side
    result = env.step(torch.zeros(2, 2, 3))
    assert result.exception.tolist() == [True, False]
    assert result.reward_terms[0, :, 1].tolist() == [-5.0, -5.0]
    assert result.episodes.exception.tolist() == [True]


def test_exception_when_box_lifted_or_tipped():
    env = make_env(num_envs=3, box_lift_limit_m=1.0)
    tilt = lambda angle: [math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0]  # noqa: E731
    qpos = env.backend.batch.bind("qpos")
    for e, angle in enumerate([1.0, 0.5, 0.0]):
        teleport(env, e, [0.0, 0.0, BOX_Z, 0.0], [[-FAR, 0.0, 0.0], [FAR, 0.0, 0.0]], [2.5, 0.0])
        qpos[e, 2] = 0.72  # high enough that the tilted box clears the floor
        qpos[e, 3:7] = tilt(angle)
    result = env.step(torch.zeros(3, 2, 3))
    assert result.exception.tolist() == [True, False, False], "tilt 1.0 rad > 0.8 limit; 0.5 rad is fine"

    env = make_env(num_envs=2)
    teleport(env, 0, [0.0, 0.0, BOX_Z + 0.5, 0.0], [[-FAR, 0.0, 0.0], [FAR, 0.0, 0.0]], [2.5, 0.0])
    teleport(env, 1, [0.0, 0.0, BOX_Z + 0.2, 0.0], [[-FAR, 0.0, 0.0], [FAR, 0.0, 0.0]], [2.5, 0.0])
    assert env.step(torch.zeros(2, 2, 3)).exception.tolist() == [True, False], "lifted by 0.5 m > 0.35 m"


def test_timeout_truncates_after_the_episode_length():
    env = make_env(episode_length_s=0.2)  # 10 policy steps of 20 ms
    for e in range(2):
        teleport(env, e, [0.0, 0.0, BOX_Z, 0.0], [[-FAR, 0.0, 0.0], [FAR, 0.0, 0.0]], [2.5, 0.0])
    for step in range(1, 11):
        result = env.step(torch.zeros(2, 2, 3))
        assert result.truncated.all().item() == (step == 10)
        assert not result.terminated.any()
    assert result.episodes.length_steps.tolist() == [10, 10]
    assert result.episodes.finish_time_s.tolist() == pytest.approx([0.2, 0.2])
    assert env.max_episode_steps == 10 and make_env().max_episode_steps == 1000
