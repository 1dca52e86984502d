"""RLlib's view of the pushing task: env config, spaces, and a `MultiAgentEnv` over one simulated env.

The `MultiAgentEnv` here is the reference for correctness: it works with every RLlib algorithm through
RLlib's stock env runners, one Python object per env. The batched runner (`mapush_rllib.runner`) steps
a whole `MAPushVecEnv` at once instead and must produce the same data.

Both build their simulator with `make_vec_env(env_config, ...)`, the one place where an env config
becomes a `MAPushVecEnv` (and where a curriculum's `TaskSchedule` is attached). A runner owns the env
config's `sim.num_envs` envs (the one place that count is kept); env k of a runner has the global env id
`worker_index * sim.num_envs + k`; since `MAPushVecEnv` draws resets from
(seed, global env id, episode index), a view of env k and row k of a batched runner play the same
episodes bit for bit.

Observations: with `central_critic` off, each agent sees its 8-D egocentric MAPush observation. With it
on, each agent's observation is that 8-D observation followed by the 17-D global state (25-D, MAPPO's
"agent-specific global state"); the policy network reads only the first 8 entries (`models.py`), the
value network reads all 25.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from mapush_rllib.ray_compat import sub_env_index
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.config import AGENT_IDS, RewardConfig, TaskConfig
from mapush_rllib.task.metrics import EpisodeStats
from mapush_rllib.task.observations import GLOBAL_STATE_DIM, OBS_DIM
from mapush_rllib.task.vec_env import MAPushVecEnv, StepResult, TaskSchedule

ACTION_DIM = 3

#: Key of the reward section in the env config (where live reward scales are written).
ENV_CONFIG_REWARDS = "rewards"
#: Builds the curriculum's TaskSchedule for one vec env: (env_config, num_envs, env_id_offset) -> schedule.
TaskScheduleFactory = Callable[[dict, int, int], TaskSchedule]


def make_env_config(
    sim: SimConfig,
    task: TaskConfig,
    rewards: RewardConfig,
    *,
    seed: int,
    central_critic: bool = False,
    task_schedule_factory: TaskScheduleFactory | None = None,
    **extra: Any,
) -> dict:
    """The env config RLlib carries to every env runner: plain nested data, so Tune can mutate its leaves.

    `extra` keys (e.g. a curriculum's settings) are kept as given for `task_schedule_factory` to read.
    """
    return {
        "sim": sim.model_dump(mode="json"),
        "task": task.model_dump(mode="json"),
        ENV_CONFIG_REWARDS: rewards.model_dump(mode="json"),
        "seed": seed,
        "central_critic": central_critic,
        "task_schedule_factory": task_schedule_factory,
        **extra,
    }


def envs_per_runner(env_config: dict) -> int:
    """How many envs one env runner owns: the env config's `sim.num_envs`."""
    return int(env_config["sim"]["num_envs"])


def env_sections(env_config: dict) -> tuple[SimConfig, TaskConfig, RewardConfig]:
    """The simulator, task and reward sections of an env config, as typed configs."""
    return (
        SimConfig.model_validate(env_config["sim"], strict=False),
        TaskConfig.model_validate(env_config["task"], strict=False),
        RewardConfig.model_validate(env_config[ENV_CONFIG_REWARDS], strict=False),
    )


def make_vec_env(env_config: dict, env_id_offset: int, *, num_envs: int | None = None) -> MAPushVecEnv:
    """The simulator of a runner's envs, global ids env_id_offset, env_id_offset+1, ...

    Args:
        env_config: as made by `make_env_config` (Tune may have changed leaves, e.g. reward scales).
        env_id_offset: global id of the first env; decides which episodes the envs play.
        num_envs: a batch of another size than the runner's (1: one sub-env of RLlib's stock runner).
    """
    sim, task, rewards = env_sections(env_config)
    if num_envs is not None:
        sim = sim.with_num_envs(num_envs)
    factory = env_config.get("task_schedule_factory")
    return MAPushVecEnv(
        sim,
        task,
        rewards,
        seed=int(env_config["seed"]),
        env_id_offset=env_id_offset,
        task_schedule=factory(env_config, sim.num_envs, env_id_offset) if factory is not None else None,
    )


def observation_space(central_critic: bool) -> gym.spaces.Box:
    """Per-agent observation: 8-D, or 8-D followed by the 17-D global state (25-D) for a central critic."""
    dim = OBS_DIM + (GLOBAL_STATE_DIM if central_critic else 0)
    return gym.spaces.Box(-np.inf, np.inf, (dim,), np.float32)


def action_space() -> gym.spaces.Box:
    """Per-agent action: (vx, vy, yaw rate) commands in [-1, 1], scaled by 0.5 in the simulator."""
    return gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)


def agent_observations(obs: torch.Tensor, state: torch.Tensor, central_critic: bool) -> torch.Tensor:
    """Per-agent observations (E, A, D) from the simulator's obs (E, A, 8) and global state (E, 17)."""
    if not central_critic:
        return obs
    return torch.cat([obs, state[:, None, :].expand(-1, obs.shape[1], -1)], dim=-1)


class MAPushMultiAgentEnv(MultiAgentEnv):
    """One pushing env, agents `agent_0` and `agent_1`, for RLlib's stock env runners.

    env_config: as made by `make_env_config`. Optional `env_id` fixes the global env id (standalone use);
    otherwise it is `worker_index * sim.num_envs + index among the runner's sub-envs` (`ray_compat.sub_env_index`).

    Episodes are a pure function of (env_config seed, global env id, episode index). The `seed` that
    RLlib passes to the first `reset()` is therefore not used: reseeding would break the match with
    the batched runner. A done step returns the terminal observation; the next `reset()` (RLlib's
    "next_step" auto-reset) returns the first observation of the episode the simulator has already
    started.

    A time-limit truncation is reported as `truncateds = {"__all__": True}` without per-agent keys:
    RLlib 2.60's `MultiAgentEpisode.add_env_step` marks an episode (and then every agent in it)
    *terminated* once every agent id appears done in the per-agent flags, so per-agent truncation
    flags would turn time-outs into terminal states and drop the value bootstrap.
    """

    def __init__(self, env_config: dict | None = None) -> None:
        super().__init__()
        env_config = env_config if env_config is not None else make_env_config(
            SimConfig(num_envs=1), TaskConfig(), RewardConfig(), seed=0
        )
        if "env_id" in env_config:
            env_id = int(env_config["env_id"])
        else:
            per_runner = envs_per_runner(env_config)
            worker_index = getattr(env_config, "worker_index", 0) or 0
            env_id = worker_index * per_runner + sub_env_index(env_config, per_runner)
        self.env_id = env_id
        self.central_critic = bool(env_config.get("central_critic", False))
        self.vec_env = make_vec_env(env_config, env_id, num_envs=1)
        self.agents = self.possible_agents = list(AGENT_IDS)
        self.observation_spaces = {aid: observation_space(self.central_critic) for aid in AGENT_IDS}
        self.action_spaces = {aid: action_space() for aid in AGENT_IDS}
        self.last_episode: EpisodeStats | None = None  # stats of the episode that ended at the last step
        self._episode_started = True  # the simulator holds a new, not yet stepped episode

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        if not self._episode_started:
            self.vec_env.reset()
        self._episode_started = True
        return self._obs_dict(self.vec_env.obs, self.vec_env.state), {}

    def step(self, action_dict: dict[str, np.ndarray]) -> tuple[dict, dict, dict, dict, dict]:
        actions = torch.as_tensor(np.stack([action_dict[aid] for aid in AGENT_IDS]), dtype=torch.float32)
        result: StepResult = self.vec_env.step(actions[None])
        done = bool(result.done[0])
        self._episode_started = done
        self.last_episode = result.episodes
        rewards = result.rewards[0].tolist()
        terminated, truncated = bool(result.terminated[0]), bool(result.truncated[0])
        return (
            self._obs_dict(result.obs, result.state),
            dict(zip(AGENT_IDS, rewards, strict=True)),
            {"__all__": terminated, **dict.fromkeys(AGENT_IDS, terminated)},
            {"__all__": truncated},  # no per-agent keys: see the class docstring
            {},
        )

    def restart_episode(self) -> None:
        """Make the next `reset()` start a new episode even if the running one has not ended."""
        self._episode_started = False

    def close(self) -> None:
        self.vec_env.close()

    def _obs_dict(self, obs: torch.Tensor, state: torch.Tensor) -> dict[str, np.ndarray]:
        per_agent = agent_observations(obs, state, self.central_critic)[0].cpu().numpy()
        return {aid: per_agent[i] for i, aid in enumerate(AGENT_IDS)}


def runner_vec_envs(env_runner: Any) -> list[MAPushVecEnv]:
    """The simulators of an env runner: the batched runner's one `MAPushVecEnv`, or one per stock sub-env.

    Empty for a runner without envs (the local runner when remote runners sample).
    """
    vec_env = getattr(env_runner, "vec_env", None)
    if vec_env is not None:
        return [vec_env]
    if getattr(env_runner, "env", None) is None:
        return []
    return [sub_env.unwrapped.vec_env for sub_env in env_runner.env.envs]
