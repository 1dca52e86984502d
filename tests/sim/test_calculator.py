"""The calculator protocol and the agents' contributions, on the real simulator with scripted teams of known quality."""

from __future__ import annotations

import math

import torch

from mapush_rllib.episode_window import EpisodeWindow
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.calculator import evaluate_team, evaluation_env, first_episodes
from mapush_rllib.task.config import RewardConfig, TaskConfig
from mapush_rllib.task.metrics import EpisodeStats
from mapush_rllib.task.scripted import ScriptedPushPolicy
from mapush_rllib.task.vec_env import MAPushVecEnv
from population.exploit import member_score

SIM = SimConfig(num_threads=1)
#: MAPush targets are U[1.5, 3.0] m away; this team stands still beyond 2.25 m, so about half the episodes fail
#: (by time-out, after 20 s) and the other half succeed early.
FAR_M = 2.25
TRUE_SUCCESS = (FAR_M - 1.5) / (3.0 - 1.5)


def run(policy, *, num_envs: int, seed: int, contribution: bool):
    env = evaluation_env(SIM, TaskConfig(), RewardConfig(), num_envs=num_envs, seed=seed, contribution=contribution)
    try:
        return evaluate_team(env, policy, contribution=contribution)
    finally:
        env.close()


def test_both_agents_pushing_are_both_needed_and_a_walker_contributes_nothing() -> None:
    team, *_ = run(ScriptedPushPolicy(), num_envs=24, seed=11, contribution=True)
    walker, *_ = run(ScriptedPushPolicy(walk_away=(1,)), num_envs=24, seed=11, contribution=True)
    assert team["success_rate"] > 0.9
    assert team["contribution_balance"] > 0.6, team
    assert walker["contribution_balance"] < 0.1, walker
    # (the walker earns a little: an idle partner is in the pusher's way more often than one that leaves)
    assert walker["contribution/agent_1/success_rate"] < 0.25 * walker["contribution/agent_0/success_rate"]
    # At equal success and task progress, the score ranks the team with a useless agent lower.
    equal = dict(full_task_success=walker["success_rate"], curriculum_progress=0.5,
                 task_progress=walker["task_progress"])
    assert member_score(**equal, freeloading_index=walker["freeloading_index"],
                        contribution_balance=walker["contribution_balance"]) < member_score(
        **equal, freeloading_index=team["freeloading_index"], contribution_balance=team["contribution_balance"])


def test_the_whole_team_block_is_the_protocol_without_contributions() -> None:
    with_contribution, stats, _ = run(ScriptedPushPolicy(max_target_distance_m=FAR_M), num_envs=12, seed=3,
                                      contribution=True)
    alone, alone_stats, _ = run(ScriptedPushPolicy(max_target_distance_m=FAR_M), num_envs=12, seed=3,
                                contribution=False)
    assert torch.equal(stats.success, alone_stats.success)
    assert torch.equal(stats.length_steps, alone_stats.length_steps)
    assert with_contribution["success_rate"] == alone["success_rate"]


def test_rolling_success_is_censored_and_the_protocol_is_not() -> None:
    """Short rollouts and trial restarts (PBT) let only the quick successes finish: the rolling training metric
    reads near 1 for a team whose true success is ~0.5; the protocol lands within its binomial interval."""
    policy = ScriptedPushPolicy(max_target_distance_m=FAR_M)
    env = MAPushVecEnv(SIM.with_num_envs(64), TaskConfig(), seed=1)
    window = EpisodeWindow(size=500)
    with torch.no_grad():
        for _restart in range(3):  # a trial restarted every 10 rollouts of 32 steps (320 steps < 1000)
            env.reset()
            for _step in range(10 * 32):
                result = env.step(policy(env.obs, env.episode_box_size))
                if result.episodes is not None:
                    window.add(result.episodes)
    env.close()
    rolling = sum(window.values["success_rate"]) / len(window.values["success_rate"])
    assert window.num_episodes >= 10 and rolling > TRUE_SUCCESS + 0.3, (rolling, window.num_episodes)

    metrics, stats, _ = run(policy, num_envs=96, seed=1_000_003, contribution=False)
    assert len(stats) == 96 and bool((stats.timeout | stats.success | stats.exception).all())
    half_width = 2.58 * math.sqrt(TRUE_SUCCESS * (1 - TRUE_SUCCESS) / 96)  # 99 % binomial interval
    assert abs(metrics["success_rate"] - TRUE_SUCCESS) < half_width, metrics["success_rate"]


def test_first_episodes_are_the_same_every_time_the_protocol_runs_on_one_env() -> None:
    env = evaluation_env(SIM, TaskConfig(), RewardConfig(), num_envs=6, seed=5, contribution=False)
    policy = ScriptedPushPolicy()
    first: EpisodeStats = evaluate_team(env, policy, contribution=False)[1]
    again: EpisodeStats = evaluate_team(env, policy, contribution=False)[1]
    env.close()
    assert torch.equal(first.initial_distance_m, again.initial_distance_m)
    assert torch.equal(first.length_steps, again.length_steps)


def test_the_drawn_envs_are_episodes_of_the_seed_whatever_the_number_of_envs() -> None:
    """`evaluate --render` draws the first envs: another --seed draws other episodes, and env i is the same
    episode for any --num-envs (so a picture of 4 envs shows 4 of the episodes the numbers were measured on)."""

    def first_four(num_envs: int, seed: int) -> torch.Tensor:
        env = evaluation_env(SIM, TaskConfig(), RewardConfig(), num_envs=num_envs, seed=seed, contribution=False)
        try:
            return env.reset()[:4]
        finally:
            env.close()

    assert torch.equal(first_four(4, seed=5), first_four(40, seed=5))
    assert not torch.allclose(first_four(4, seed=5), first_four(4, seed=6))


def test_first_episodes_keeps_each_envs_first_episode_in_env_order() -> None:
    """The per-env table holds the episode each env ended first (not a later one of the same env), by env."""
    env = MAPushVecEnv(SIM.with_num_envs(12), TaskConfig(), RewardConfig(), seed=4)
    policy = ScriptedPushPolicy()
    stats, _ = first_episodes(env, policy)
    env.reset(seed=4)
    first_length = torch.full((12,), -1)
    while (first_length < 0).any():
        ended = env.step(policy(env.obs, env.episode_box_size)).episodes
        if ended is not None:
            for env_id, length in zip(ended.env_ids.tolist(), ended.length_steps.tolist(), strict=True):
                if first_length[env_id] < 0:
                    first_length[env_id] = length
    env.close()
    assert stats.env_ids.tolist() == list(range(12))
    assert stats.length_steps.tolist() == first_length.tolist()
    assert len(set(first_length.tolist())) > 1  # episodes ended at different steps: later ones were ignored
