"""The Isaac Gym backend's mapping code, run against the TEST DOUBLE of Isaac Gym + MAPush
(tests/doubles/fake_mapush_isaacgym.py): Isaac Gym itself cannot be installed here."""

from __future__ import annotations

import math
import shutil
import sys

import numpy as np
import pytest
import torch

from mapush_rllib.sim.client import SimulatorServerError
from mapush_rllib.sim.config import IsaacGymConfig, ServerConfig, SimConfig
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.vec_env import MAPushVecEnv

from .conftest import FAKE_ISAACGYM_SITE, FAKE_MAPUSH_CHECKOUT, PY38_HINT, find_python38, python38_binary

torch.set_num_threads(1)
VARIANTS = [{"size_m": 1.2, "mass_kg": 4.0}, {"size_m": 1.0, "mass_kg": 3.0}]


def _options(**overrides):
    options = {"mapush_path": str(FAKE_MAPUSH_CHECKOUT), "box_variants": VARIANTS, "policy_dt_s": 0.02,
               "box_height_m": 0.5, "sim_device": "cuda:0", "headless": True, "seed": 0}
    options.update(overrides)
    return options


def _backend(num_envs=3, **overrides):
    from mapush_rllib.sim.isaacgym_backend import IsaacGymBackend

    return IsaacGymBackend(num_envs, _options(**overrides))


def _reset(backend, ids, box_xy=(0.0, 0.0), box_yaw=0.3, agents=((2.0, 0.0, math.pi), (-2.0, 0.5, 0.0))):
    n = len(ids)
    box_pose = np.tile([box_xy[0], box_xy[1], 0.25, box_yaw], (n, 1)).astype(np.float32)
    agent_pose = np.tile(np.asarray(agents, dtype=np.float32), (n, 1, 1))
    agent_vel = np.tile(np.float32([[0.05, -0.05, 0.1], [0.0, 0.0, 0.0]]), (n, 1, 1))
    backend.reset_envs(np.asarray(ids), box_pose, agent_pose, agent_vel)
    return box_pose, agent_pose, agent_vel


def test_reset_writes_the_task_layers_poses_in_one_indexed_call(isaacgym_double):
    backend = _backend()
    env = backend.env
    calls_before, resets_before = env.gym.indexed_root_writes, len(env.reset_idx_calls)
    box_pose, agent_pose, agent_vel = _reset(backend, [0, 2])
    # MAPush's own reset_idx ran first (joints, gait clock, locomotion history), then one more indexed write
    assert np.array_equal(env.reset_idx_calls[resets_before], [0, 2])
    assert env.gym.indexed_root_writes == calls_before + 2
    rows, _ = env.gym.pending_root_write  # the double keeps only the last call: it must cover every actor
    assert set(rows) == set(env.actor_indices[[0, 2]].reshape(-1).tolist())
    state = backend.state()  # the root-state mirror holds what the task layer asked for ...
    assert np.allclose(state["agent_lin_vel"][[0, 2]], agent_vel[..., :2], atol=1e-5)
    assert np.allclose(state["agent_yaw_rate"][[0, 2]], agent_vel[..., 2], atol=1e-5)
    env._simulate()  # ... and the pending write reaches the "PhysX" state at the next simulate
    env._refresh()
    state = backend.state()
    assert np.allclose(state["box_pos"][[0, 2]], box_pose[:, :3], atol=1e-5)
    assert np.allclose(state["box_quat"][0], [math.cos(0.15), 0, 0, math.sin(0.15)], atol=1e-6)
    assert np.allclose(state["agent_pos"][[0, 2], :, :2], agent_pose[..., :2], atol=1e-5)
    assert np.allclose(state["agent_pos"][[0, 2], :, 2], 0.45)
    assert np.allclose(np.cos(state["agent_yaw"][[0, 2]] - agent_pose[..., 2]), 1.0, atol=1e-6)


def test_commands_reach_the_locomotion_layer_in_metres_per_second(isaacgym_double):
    backend = _backend(num_envs=2)
    _reset(backend, [0, 1], agents=((3.0, 0.0, 0.0), (-3.0, 0.0, 0.0)))
    commands = np.zeros((2, 2, 3), dtype=np.float32)
    commands[:, 0] = [0.3, 0.0, 0.2]
    backend.step(commands)
    assert np.allclose(backend.env.last_commands.reshape(2, 2, 3), commands)  # no extra 0.5 from the wrapper
    state = backend.state()
    assert np.allclose(state["agent_lin_vel"][:, 0, 0], 0.3 * np.cos(0.2 * np.arange(1, 5) * 0.005)[-1], atol=1e-3)
    assert np.allclose(state["agent_pos"][:, 0, 0], 3.0 + 0.3 * 0.02, atol=1e-3)


def test_mapush_auto_reset_is_neutralised(isaacgym_double):
    """MAPush resets an env on its own timeout / success / exception; the task layer must decide instead."""
    isaacgym_double.FakeGo1PushMidCfg.env.episode_length_s = 0.1  # MAPush would time out every 6 steps
    try:
        backend = _backend(num_envs=2)
    finally:
        isaacgym_double.FakeGo1PushMidCfg.env.episode_length_s = 20
    _reset(backend, [0, 1], agents=((3.0, 0.0, 0.0), (-3.0, 0.0, 0.0)))
    resets = len(backend.env.reset_idx_calls)
    commands = np.zeros((2, 2, 3), dtype=np.float32)
    commands[:, 0, 0] = 0.4
    for _ in range(20):
        backend.step(commands)
    assert len(backend.env.reset_idx_calls) == resets, "MAPush reset an env by itself"
    assert np.allclose(backend.state()["agent_pos"][:, 0, 0], 3.0 + 20 * 0.4 * 0.02, atol=1e-3)


def test_box_variants_are_swapped_by_set_box_and_friction_is_set(isaacgym_double):
    backend = _backend(num_envs=3)
    env = backend.env
    assert env.num_npcs == 3  # box, target marker, one extra variant
    backend.set_box([1], np.float32([[1.0, 1.0, 0.5]]), np.float32([3.0]), np.float32([0.57]))
    variant = env.npc_handles[1][2]
    assert env.gym.actor_asset[(1, variant)].size == [1.0, 1.0, 0.5]  # built from the generated URDF
    assert env.gym.actor_asset[(1, variant)].mass == 3.0
    assert env.gym.actor_friction[(1, variant)] == pytest.approx(0.57)
    _reset(backend, [0, 1, 2], box_yaw=0.0, agents=((0.75, 0.0, math.pi), (-3.0, 0.0, 0.0)))
    env._simulate(), env._refresh()
    # env 1 pushes the 1.0 m box: an agent 0.75 m from the centre touches it (0.5 + 0.3 reach) ...
    commands = np.zeros((3, 2, 3), dtype=np.float32)
    commands[:, 0, 0] = 0.5  # agent 0 faces -x: walks into the box
    backend.step(commands)
    state = backend.state()
    assert state["box_lin_vel"][1, 0] == pytest.approx(-0.5, abs=1e-4)
    assert state["agent_box_force"][1, 0] == pytest.approx(50.0, abs=1e-3)  # trunk only, feet excluded
    assert state["agent_box_force"][1, 1] == 0.0  # 3 m away
    # ... while the native 1.2 m box of env 0 moved too, and the parked native box of env 1 stayed parked
    native_row = env.npc_indices[1, 0].item()
    parked = env.all_root_states[native_row, :2].numpy() - backend._origin[1, :2]
    assert np.allclose(parked, [-10.0, -10.0], atol=1e-5)
    with pytest.raises(ValueError, match="box_variants"):
        backend.set_box([0], np.float32([[0.8, 0.8, 0.5]]), np.float32([2.0]), np.float32([0.5]))


def test_fallen_robot_is_reported_and_ends_the_episode(isaacgym_double):
    from mapush_rllib.sim.isaacgym_backend import IsaacGymBackend

    backend = IsaacGymBackend(2, _options())
    vec = MAPushVecEnv(SimConfig(num_envs=2), seed=1, backend=backend)
    vec.step(torch.zeros(2, 2, 3))  # the reset's pending root-state write is applied
    row = backend.env.agent_indices[1, 0].item()
    backend.env._physx[row, 3:7] = [math.sin(0.5), 0.0, 0.0, math.cos(0.5)]  # roll 1.0 rad > 0.8
    result = vec.step(torch.zeros(2, 2, 3))
    assert result.exception.tolist() == [False, True]
    assert result.episodes is not None and result.episodes.env_ids.tolist() == [1]


def test_vec_env_over_the_double_runs_episodes_and_curriculum_box_changes(isaacgym_double):
    from mapush_rllib.sim.isaacgym_backend import IsaacGymBackend

    task = TaskConfig(episode_length_s=0.4)  # 20-step episodes: the box change applies at the first reset
    vec = MAPushVecEnv(SimConfig(num_envs=4), task, seed=2, backend=IsaacGymBackend(4, _options()))
    vec.set_task_params([0, 1], box_size_m=1.0, box_mass_kg=3.0)
    generator = torch.Generator().manual_seed(0)
    ends = 0
    for _ in range(45):
        result = vec.step(torch.rand(4, 2, 3, generator=generator) * 2 - 1)
        assert torch.isfinite(result.obs).all()
        ends += 0 if result.episodes is None else len(result.episodes.env_ids)
    assert ends >= 8
    assert vec.backend._active_npc.tolist() == [2, 2, 0, 0]  # the 1.0 m variant is npc 2
    assert vec.episode_box_size.tolist() == [1.0, 1.0, 1.2000000476837158, 1.2000000476837158]


def test_missing_assets_are_named(isaacgym_double, tmp_path):
    from mapush_rllib.sim.isaacgym_backend import IsaacGymSetupError, check_assets

    checkout = tmp_path / "MAPush"
    shutil.copytree(FAKE_MAPUSH_CHECKOUT, checkout)
    (checkout / "mqe/utils/locomotion_checkpoints/walk_these_ways/body_latest.jit").unlink()
    (checkout / "resources/actuator_nets/unitree_go1.pt").write_text("version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(IsaacGymSetupError, match=r"unitree_go1.pt \(a Git LFS pointer\).*body_latest.jit \(missing\)"):
        check_assets(str(checkout))


def test_policy_rate_mismatch_is_an_error(isaacgym_double):
    from mapush_rllib.sim.isaacgym_backend import IsaacGymSetupError

    with pytest.raises(IsaacGymSetupError, match="physics_dt_s: 0.005 and substeps: 4"):
        _backend(policy_dt_s=0.01)


def _isaacgym_sim(python: str, **isaacgym) -> SimConfig:
    config = IsaacGymConfig(mapush_path=str(FAKE_MAPUSH_CHECKOUT), box_variants=VARIANTS, **isaacgym)
    server = ServerConfig(python=python, env={"PYTHONPATH": str(FAKE_ISAACGYM_SITE)}, isaacgym=config)
    return SimConfig(backend="isaacgym", server=server)


def test_wrong_python_for_isaacgym_is_named():
    """This interpreter (3.10+) cannot run Isaac Gym Preview 4: the error says so and what to set."""
    sim = _isaacgym_sim(sys.executable)
    sim.server.env.clear()  # no Isaac Gym on the server's path
    message = r"Isaac Gym Preview 4 supports Python 3.6-3.8 only. Set simulator.server.python"
    with pytest.raises(SimulatorServerError, match=message):
        MAPushVecEnv(sim.with_num_envs(2))


def test_missing_mapush_checkout_is_named(tmp_path):
    sim = _isaacgym_sim(sys.executable)
    sim.server.isaacgym.mapush_path = str(tmp_path / "nowhere")
    with pytest.raises(SimulatorServerError, match="mapush_path: .* is not a folder; clone MAPush"):
        MAPushVecEnv(sim.with_num_envs(2))


def test_python38_server_hosting_the_double_equals_in_process(isaacgym_double):
    """The real server in a real Python 3.8 (numpy only, like Isaac Gym's env minus torch) hosts the Isaac Gym
    backend over the double; observations, rewards and dones equal the in-process backend's."""
    python38 = find_python38()
    if python38 is None:
        if python38_binary() is None:
            pytest.skip("no Python 3.8 on this machine")
        pytest.fail("Python 3.8 is installed but no 3.8 environment with numpy was prepared: " + PY38_HINT)
    from mapush_rllib.sim.isaacgym_backend import IsaacGymBackend

    served = MAPushVecEnv(_isaacgym_sim(python38).with_num_envs(3), seed=4)
    local = MAPushVecEnv(SimConfig(num_envs=3), seed=4, backend=IsaacGymBackend(3, _options()))
    try:
        assert served.backend.server_python.startswith("3.8.")
        assert "agent_fallen" in served.backend.state_fields
        assert torch.equal(served.obs, local.obs)
        generator = torch.Generator().manual_seed(1)
        for step in range(40):
            if step == 10:
                for env in (served, local):
                    env.set_task_params([1], box_size_m=1.0, box_mass_kg=3.0)
            actions = torch.rand(3, 2, 3, generator=generator) * 2 - 1
            a, b = served.step(actions), local.step(actions)
            for name in ("obs", "next_obs", "rewards", "terminated", "truncated"):
                assert torch.equal(getattr(a, name), getattr(b, name)), f"step {step}: {name}"
    finally:
        served.close()
        local.close()


def test_pbt_isaacgym_config_validates():
    import yaml

    from .conftest import ROOT

    raw = yaml.safe_load((ROOT / "configs" / "pbt_isaacgym.yaml").read_text())["simulator"]
    sim = SimConfig.model_validate(raw)
    assert sim.backend == "isaacgym"
    assert [v.resolved_mass_kg() for v in sim.server.isaacgym.box_variants][0] == 4.0


def test_pbt_isaacgym_curriculum_uses_only_the_boxes_isaac_gym_builds():
    """Isaac Gym cannot resize a box actor, so every (size, mass) a curriculum level asks for must be a variant."""
    import torch

    from curriculum.levels import build_level_table
    from population.config import load_experiment

    from .conftest import ROOT

    experiment = load_experiment(ROOT / "configs" / "pbt_isaacgym.yaml")
    table = build_level_table(experiment.curriculum, experiment.task, experiment.simulator.physics)
    rows = table.params(torch.arange(table.num_levels + 1))
    variants = {round(v.size_m, 6) for v in experiment.simulator.server.isaacgym.box_variants}
    assert {round(float(size), 6) for size in rows["box_size_m"]} <= variants
