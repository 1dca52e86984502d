"""The MultiAgentEnv view: RLlib's dict API over one simulated env, ids, flags and observations."""

from __future__ import annotations

import numpy as np
import torch
from ray.rllib.env.env_context import EnvContext

from mapush_rllib.env import MAPushMultiAgentEnv, make_env_config, make_vec_env
from mapush_rllib.ray_compat import sub_env_index
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.config import AGENT_IDS, RewardConfig, TaskConfig

ZERO_ACTIONS = {aid: np.zeros(3, np.float32) for aid in AGENT_IDS}


def env_config(task: TaskConfig | None = None, **kwargs: object) -> dict:
    return make_env_config(
        SimConfig(num_envs=4, num_threads=1), task or TaskConfig(), RewardConfig(), seed=11, **kwargs,
    )


def test_reset_and_step_follow_the_rllib_multi_agent_api() -> None:
    env = MAPushMultiAgentEnv({**env_config(), "env_id": 2})
    obs, infos = env.reset()
    assert sorted(obs) == sorted(AGENT_IDS) and infos == {}
    assert all(env.observation_spaces[aid].contains(obs[aid]) for aid in AGENT_IDS)
    obs, rewards, terminateds, truncateds, infos = env.step(ZERO_ACTIONS)
    assert sorted(obs) == sorted(rewards) == sorted(AGENT_IDS)
    assert all(isinstance(r, float) for r in rewards.values())
    assert terminateds == {"__all__": False, "agent_0": False, "agent_1": False}
    assert truncateds == {"__all__": False}


def test_env_k_plays_row_k_of_the_batched_simulator() -> None:
    config = env_config()
    batch = make_vec_env(config, env_id_offset=0)
    view = MAPushMultiAgentEnv({**config, "env_id": 3})
    obs, _ = view.reset()
    assert np.array_equal(obs["agent_1"], batch.obs[3, 1].numpy())
    actions = torch.rand(4, 2, 3) * 2 - 1
    result = batch.step(actions)
    obs, rewards, *_ = view.step({aid: actions[3, i].numpy() for i, aid in enumerate(AGENT_IDS)})
    assert np.array_equal(obs["agent_0"], result.obs[3, 0].numpy())
    assert rewards["agent_1"] == float(result.rewards[3, 1])


def test_timeout_is_a_truncation_and_the_next_reset_starts_the_next_episode() -> None:
    config = env_config(TaskConfig(episode_length_s=0.06))  # three steps
    env = MAPushMultiAgentEnv({**config, "env_id": 0})
    first, _ = env.reset()
    for _ in range(3):
        _, _, terminateds, truncateds, _ = env.step(ZERO_ACTIONS)
    assert truncateds == {"__all__": True} and not terminateds["__all__"]
    assert env.last_episode is not None and bool(env.last_episode.timeout[0])
    second, _ = env.reset()
    assert not np.array_equal(first["agent_0"], second["agent_0"])
    batch = make_vec_env(config, env_id_offset=0, num_envs=1)
    for _ in range(3):
        batch.step(torch.zeros(1, 2, 3))
    assert np.array_equal(second["agent_0"], batch.obs[0, 0].numpy())  # episode 1 of env 0, not a re-draw


def test_central_critic_observation_carries_the_global_state() -> None:
    env = MAPushMultiAgentEnv({**env_config(central_critic=True), "env_id": 1})
    obs, _ = env.reset()
    assert obs["agent_0"].shape == (25,)
    assert np.array_equal(obs["agent_0"][:8], env.vec_env.obs[0, 0].numpy())
    assert np.array_equal(obs["agent_0"][8:], env.vec_env.state[0].numpy())
    assert np.array_equal(obs["agent_0"][8:], obs["agent_1"][8:])


def test_sub_envs_of_a_runner_number_themselves_in_creation_order() -> None:
    context = EnvContext(env_config(), worker_index=2, num_workers=2)
    envs = [MAPushMultiAgentEnv(context) for _ in range(4)]
    assert [env.env_id for env in envs] == [8, 9, 10, 11]
    assert sub_env_index(context, 4) == 0  # a fifth creation on the same context wraps around
