"""The pooled rule: one frontier moved by each level's outcomes pooled over all envs."""

from __future__ import annotations

import torch

from curriculum.pooled import frontier_rows, next_frontier
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.scripted import ScriptedPushPolicy
from mapush_rllib.task.vec_env import MAPushVecEnv

RULE = dict(level_episodes=4, promote_success_rate=0.75, demote_success_rate=0.25)


def frontier(now: int, successes: list[int], episodes: list[int]) -> int:
    return int(next_frontier(torch.tensor(now), torch.tensor(successes), torch.tensor(episodes), **RULE))


def test_the_frontier_passes_every_mastered_level_in_one_step_and_stops_at_the_first_unknown() -> None:
    assert frontier(0, [4, 4, 4, 0], [4, 4, 4, 0]) == 3  # levels 0-2 mastered, level 3 not played yet
    assert frontier(0, [4, 4, 2, 0], [4, 4, 4, 0]) == 2  # level 2 at 50 %: stays there
    assert frontier(1, [0, 3, 4, 4], [0, 4, 4, 4]) == 3  # levels below the frontier need no new evidence
    assert frontier(0, [3, 0, 0, 0], [3, 0, 0, 0]) == 0  # too few outcomes to decide


def test_the_frontier_steps_back_from_a_failing_level_and_does_not_bounce() -> None:
    assert frontier(2, [4, 4, 0, 0], [4, 4, 4, 0]) == 1  # level 2 fails: back to 1
    assert frontier(1, [4, 4, 0, 0], [4, 4, 4, 0]) == 1  # level 1 is mastered, but level 2 is known to fail
    assert frontier(0, [0, 0, 0, 0], [4, 0, 0, 0]) == 0  # level 0 cannot go lower


def test_probes_cover_every_level_and_the_rest_play_the_frontier() -> None:
    u = torch.linspace(0, 1, 10_001)[:-1]
    rows = frontier_rows(torch.tensor(2), u, num_levels=5, probe_share=0.2, whole_range_at_top=True)
    assert (rows == 2).float().mean().item() > 0.8
    assert set(rows[u < 0.2].tolist()) == {0, 1, 2, 3, 4}
    top = frontier_rows(torch.tensor(4), u, num_levels=5, probe_share=0.2, whole_range_at_top=True)
    assert all(abs((top == k).float().mean().item() - 0.2) < 0.01 for k in range(5))


def test_a_team_that_masters_the_levels_moves_the_frontier_up_in_a_real_simulator(make_scheduler) -> None:
    scheduler = make_scheduler(num_envs=16, rule="pooled", level_episodes=6, stats_window_episodes=12,
                               probe_share=0.3, num_levels=4)
    env = MAPushVecEnv(SimConfig(num_envs=16, num_threads=1), TaskConfig(), seed=0, task_schedule=scheduler)
    policy = ScriptedPushPolicy()
    with torch.no_grad():
        for _ in range(1200):
            env.step(policy(env.obs, env.episode_box_size))
    env.close()
    metrics = scheduler.metrics()
    assert metrics["curriculum/frontier"] >= 2 and metrics["curriculum/promotions"] >= 2, metrics
    assert metrics["curriculum/demotions"] == 0
