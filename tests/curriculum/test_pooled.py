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


def test_level_statistics_are_not_biased_by_which_episodes_end_first(make_scheduler) -> None:
    """Successes end after 1 step, failures at the time limit (10 steps); half succeed. Counted as episodes end,
    a level reads ~100 % success for the first steps and promotes on it; counted in start order up to the oldest
    running episode, it reads the truth within its binomial interval at every moment, and episodes cut short
    by a reset are dropped."""
    scheduler = make_scheduler(num_envs=64, rule="pooled", level_episodes=16, stats_window_episodes=64,
                               probe_share=0.0, promote_success_rate=0.9, demote_success_rate=0.05,
                               num_levels=3)
    generator = torch.Generator().manual_seed(0)
    ids = torch.arange(64)
    scheduler.task_params(ids)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        success = torch.rand(n, generator=generator) < 0.5
        return success, torch.where(success, 1, 10)

    success, remaining = draw(64)
    readings, in_end_order = 0, []
    for step in range(60):
        remaining -= 1
        ended = ids[remaining == 0]
        in_end_order += success[ended].tolist()
        if step == 5:  # what counting as episodes end would read here
            assert sum(in_end_order[-64:]) / len(in_end_order[-64:]) > 0.9
        scheduler.episode_end(ended, success[ended])
        scheduler.task_params(ended)
        success[ended], remaining[ended] = draw(len(ended))
        if step == 30:  # the env batch is rebuilt: every running episode restarts without an end
            scheduler.task_params(ids)
            success, remaining = draw(64)
        successes, episodes = (int(x) for x in (t[0] for t in scheduler.row_outcomes()))
        if episodes >= 16:
            readings += 1
            assert abs(successes / episodes - 0.5) <= 3 * (0.25 / episodes) ** 0.5, (step, successes, episodes)
    assert readings >= 30
    assert int(scheduler.frontier) == 0 and int(scheduler.promotions) == 0, "no promotion on censored data"


def test_a_level_is_passed_on_sure_successes_and_left_on_sure_failures() -> None:
    """The window ahead holds running episodes: counted as failures for a promotion, as successes for a demotion."""
    def with_bounds(now: int, ahead: tuple[list[int], list[int], list[int]]) -> int:
        none = torch.zeros(3, dtype=torch.long)
        bounds = tuple(torch.tensor(x) for x in ahead)
        return int(next_frontier(torch.tensor(now), none, none, bounds=bounds, **RULE))

    assert with_bounds(0, ([3, 0, 0], [0, 0, 0], [4, 0, 0])) == 1  # 3 of 4 sure: >= 0.75 whatever the 4th does
    assert with_bounds(0, ([2, 0, 0], [0, 0, 0], [4, 0, 0])) == 0  # 2 sure, 2 running: could still be 0.5
    assert with_bounds(1, ([4, 0, 0], [0, 3, 0], [4, 4, 0])) == 0  # 3 of 4 surely failed: <= 0.25 at best
    assert with_bounds(1, ([4, 0, 0], [0, 2, 0], [4, 4, 0])) == 1  # 2 running could still succeed


def test_quick_successes_promote_before_the_slow_failures_end(make_scheduler) -> None:
    """Four envs in five succeed in one step, the fifth fails only at a 1,000-step limit. The level's settled
    window stays empty until that first failure ends, but the window ahead, its running episodes counted as
    failures, shows >= 0.75 sure successes within a step: the frontier climbs without waiting a time-out. At
    three in five (a true 0.6) it does not."""
    for succeeding, expected in ((lambda i: i % 5 != 0, 2), (lambda i: i % 5 > 1, 0)):
        scheduler = make_scheduler(num_envs=64, rule="pooled", level_episodes=16, stats_window_episodes=32,
                                   probe_share=0.0, promote_success_rate=0.75, demote_success_rate=0.05,
                                   num_levels=3)
        ids = torch.arange(64)
        quick = succeeding(ids)
        scheduler.task_params(ids)
        for _ in range(10):
            scheduler.episode_end(ids[quick], torch.ones(int(quick.sum()), dtype=torch.bool))
            scheduler.task_params(ids[quick])
        assert int(scheduler.row_outcomes()[1][0]) == 0, "the settled window waits for the first failure"
        assert int(scheduler.frontier) == expected and int(scheduler.demotions) == 0
