"""The scheduler inside a real MAPushVecEnv (embedded MuJoCo): levels change the envs' tasks and physical boxes."""

import torch

from curriculum import CurriculumConfig, CurriculumScheduler
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.scripted import ScriptedPushPolicy
from mapush_rllib.task.vec_env import MAPushVecEnv

NUM_ENVS = 8
EVAL_ENVS = [3, 7]  # eval_fraction 0.25: every 4th global env id
SIZES = torch.tensor([0.8, 1.0, 1.1])
CONFIG = CurriculumConfig(
    levels=[{"target_distance_m": (1.1, 1.3), "box_size_m": float(size)} for size in SIZES],
    window_episodes=1, min_episodes=1, promote_success_rate=1.0, demote_success_rate=0.0,  # move on every episode
    top_level="stay", eval_fraction=0.25, rule="threshold",
)


def physical_box(env):
    """(E,) box side and (E,) mass as the MuJoCo batch holds them (the backend's per-env model fields)."""
    backend = env.backend
    side = torch.as_tensor(backend._geom_size[:, backend._box_geom, 0] * 2, dtype=torch.float32)
    mass = torch.as_tensor(backend._body_mass[:, backend._box_body], dtype=torch.float32)
    return side, mass


def test_levels_drive_the_task_params_and_the_simulated_box():
    sim = SimConfig(num_envs=NUM_ENVS, num_threads=1)
    scheduler = CurriculumScheduler(CONFIG, TaskConfig(), sim.physics, num_envs=NUM_ENVS, seed=0)
    env = MAPushVecEnv(sim, TaskConfig(), seed=0, task_schedule=scheduler)
    policy = ScriptedPushPolicy()
    train = torch.ones(NUM_ENVS, dtype=torch.bool)
    train[EVAL_ENVS] = False

    expected = torch.where(train, SIZES[0], 1.2)
    side, mass = physical_box(env)
    assert torch.allclose(side, expected) and torch.allclose(env.task.box_size_m, expected)
    assert torch.allclose(mass, 4.0 * (expected / 1.2) ** 2)  # mass follows size

    episodes = []
    for _ in range(3000):
        played = scheduler.episode_levels.clone()
        result = env.step(policy(env.obs, env.episode_box_size))
        if result.episodes is None:
            continue
        ended = result.episodes
        episodes.append(ended)
        ids = ended.env_ids
        # Each finished episode was played with its level's box and target range.
        sizes = torch.cat([SIZES, torch.tensor([1.2])])[played[ids]]
        assert torch.allclose(ended.box_size_m, sizes)
        low = torch.where(train[ids], 1.1, 1.5)  # training levels' target range, or the full task's
        high = torch.where(train[ids], 1.3, 3.0)
        assert ((ended.initial_distance_m >= low - 1e-4) & (ended.initial_distance_m <= high + 1e-4)).all()
        # The new episodes of those envs already run in a box of their (possibly new) level.
        side, _ = physical_box(env)
        now = torch.cat([SIZES, torch.tensor([1.2])])[scheduler.episode_levels[ids]]
        assert torch.allclose(side[ids], now) and torch.allclose(env.episode_box_size[ids], now)
        if (scheduler.levels[train] == 2).all() and int(scheduler.row_outcomes()[1][-1]) >= 2:
            break

    assert (scheduler.levels[train] == 2).all(), scheduler.levels  # every training env climbed to the top
    assert (scheduler.levels[~train] == -1).all()
    side, mass = physical_box(env)
    assert torch.allclose(side[train], SIZES[2].expand(6)) and torch.allclose(side[~train], torch.tensor([1.2, 1.2]))
    assert torch.allclose(mass[train], 4.0 * (SIZES[2] / 1.2) ** 2)

    total = sum(len(e) for e in episodes)
    metrics = scheduler.metrics()
    scored = sum(metrics[f"curriculum/level_episodes/{k}"] for k in range(3)) + metrics["curriculum/full_task_episodes"]
    assert scored == total  # every episode the env reported was recorded once, at the level it was played
    assert metrics["curriculum/promotions"] >= 12 and metrics["curriculum/level_mean"] == 2.0
    assert metrics["curriculum/full_task_episodes"] >= 2


def test_restored_state_drives_a_fresh_env_after_its_reset():
    """The restore recipe for a new process or a recreated env runner: build, load the state, reset the env."""
    sim = SimConfig(num_envs=NUM_ENVS, num_threads=1)
    scheduler = CurriculumScheduler(CONFIG, TaskConfig(), sim.physics, num_envs=NUM_ENVS, seed=0)
    env = MAPushVecEnv(sim, TaskConfig(), seed=0, task_schedule=scheduler)
    policy = ScriptedPushPolicy()
    while int(scheduler.promotions) < 3:
        env.step(policy(env.obs, env.episode_box_size))
    state = scheduler.state_dict()

    fresh = CurriculumScheduler(CONFIG, TaskConfig(), sim.physics, num_envs=NUM_ENVS, seed=0)
    new_env = MAPushVecEnv(sim, TaskConfig(), seed=0, task_schedule=fresh)
    assert torch.allclose(new_env.episode_box_size[0], SIZES[0])  # built at level 0
    fresh.load_state_dict(state)
    assert torch.equal(fresh.levels, scheduler.levels) and torch.equal(fresh.window, scheduler.window)
    new_env.reset()
    row_sizes = torch.cat([SIZES, torch.tensor([1.2])])  # levels 0-2 (top_level: stay), then the full task
    rows = torch.where(scheduler.levels >= 0, scheduler.levels, 3)  # the eval slice (level -1) runs the full task
    assert torch.allclose(new_env.episode_box_size, row_sizes[rows])
    assert torch.allclose(physical_box(new_env)[0], new_env.episode_box_size)
    assert (fresh.levels > 0).any()
