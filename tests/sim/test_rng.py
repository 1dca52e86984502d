"""Resets depend on (seed, env id, episode index) only: batching does not change an env's episodes."""

import torch

from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.rng import uniform
from mapush_rllib.task.vec_env import MAPushVecEnv


def test_uniform_is_counter_based_and_well_spread():
    ids, episode = torch.arange(4000), torch.zeros(4000, dtype=torch.long)
    a = uniform(7, ids, episode, 5)
    assert torch.equal(a[1234], uniform(7, ids[1234:1235], episode[:1], 5)[0])
    assert not torch.equal(a, uniform(8, ids, episode, 5)), "the seed matters"
    assert not torch.equal(a, uniform(7, ids, episode + 1, 5)), "so does the episode"
    assert 0 <= a.min() and a.max() < 1 and abs(a.mean().item() - 0.5) < 0.01 and abs(a.var().item() - 1 / 12) < 0.003


def test_env_in_a_batch_equals_the_same_env_alone():
    batch = MAPushVecEnv(SimConfig(num_envs=6, num_threads=1), seed=3)
    alone = MAPushVecEnv(SimConfig(num_envs=1, num_threads=1), seed=3, env_id_offset=4)
    torch.testing.assert_close(batch.obs[4:5], alone.obs, rtol=0, atol=0)
    generator = torch.Generator().manual_seed(0)
    for _ in range(120):
        actions = torch.rand(6, 2, 3, generator=generator) * 2 - 1
        a, b = batch.step(actions), alone.step(actions[4:5])
        torch.testing.assert_close(a.obs[4:5], b.obs, rtol=0, atol=0)
        torch.testing.assert_close(a.rewards[4:5], b.rewards, rtol=0, atol=0)


def test_different_seeds_give_different_episodes():
    a = MAPushVecEnv(SimConfig(num_envs=3, num_threads=1), seed=0)
    b = MAPushVecEnv(SimConfig(num_envs=3, num_threads=1), seed=1)
    assert not torch.allclose(a.obs, b.obs)
    torch.testing.assert_close(a.reset(seed=1), b.obs, rtol=0, atol=0)
