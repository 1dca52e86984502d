"""The batched env runner: all envs of a runner stepped in one simulator call, training data built in bulk.

RLlib's stock multi-agent runner does Python work per env and per step (episode objects, connector
passes, metric calls) and tops out near 5 k env steps/s whatever the simulator costs. This runner owns
one `MAPushVecEnv` of N envs and, per step, does one batched policy forward per module and one
simulator call, writing into preallocated (T, N, A, ...) tensors. After T steps it cuts the tensors into
RLlib `MultiAgentEpisode` chunks (Python work per episode chunk, not per step), identical to the
chunks the stock runner produces from N `MAPushMultiAgentEnv`s: same observations, actions, rewards,
flags, model outputs, lookback data and timesteps (`tests/rllib/test_runner_equivalence.py`). The PPO
Learner, checkpoints and Tune therefore work unchanged.

Supported: the default connector pipelines (no custom env-to-module / module-to-env connectors), a
static agent-to-module mapping, sampling by timesteps (`num_episodes` is not supported; use
`mapush_rllib.evaluate` for evaluation). Per-episode callbacks (`on_episode_start/step/end`) are not
fired; `on_sample_end` is. Task metrics go into the results under `env_runners/mapush/` (`callbacks.py`).

Devices: the runner acts where its simulator's tensors live (`simulator.device`; with MuJoCo Warp on "cuda"
the rollout, the policy forward passes and the sampling all stay on the GPU). With `training.learner_batch:
bulk` it returns its rollout tensors as one `RolloutBatch` instead of episode chunks, and `MAPushPPOLearner`
builds the same training batch from them in bulk (`mapush_rllib.rollout_batch`): no per-episode Python and no
host copies between simulator and learner.

Env ids: runner k owns global env ids k*N .. k*N+N-1 (the local runner, k = 0, samples only when there
are no remote runners), so runners play distinct, reproducible episodes.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.callbacks.utils import make_callback
from ray.rllib.core.columns import Columns
from ray.rllib.env.env_context import EnvContext
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.env.single_agent_episode import SingleAgentEpisode
from ray.rllib.env.utils.infinite_lookback_buffer import InfiniteLookbackBuffer
from ray.rllib.env.vector.vector_multi_agent_env import VectorMultiAgentEnv
from ray.rllib.utils.metrics import (
    ENV_STEP_TIMER,
    EPISODE_AGENT_RETURN_MEAN,
    EPISODE_AGENT_STEPS,
    EPISODE_DURATION_SEC_MEAN,
    EPISODE_LEN_MAX,
    EPISODE_LEN_MEAN,
    EPISODE_LEN_MIN,
    EPISODE_MODULE_RETURN_MEAN,
    EPISODE_RETURN_MAX,
    EPISODE_RETURN_MEAN,
    EPISODE_RETURN_MIN,
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    RLMODULE_INFERENCE_TIMER,
    SAMPLE_TIMER,
    WEIGHTS_SEQ_NO,
)

from mapush_rllib.env import action_space, agent_observations, envs_per_runner, make_vec_env, observation_space
from mapush_rllib.episode_window import EpisodeWindow
from mapush_rllib.ray_compat import (
    MultiAgentEnvRunnerBase,
    finish_episode_chunk,
    has_custom_connectors,
    module_forward,
)
from mapush_rllib.rollout_batch import BULK_LEARNER_BATCH, RolloutBatch
from mapush_rllib.task.config import AGENT_IDS
from mapush_rllib.task.metrics import EpisodeStats
from mapush_rllib.task.vec_env import MAPushVecEnv


class SimulatorSpaces(VectorMultiAgentEnv):
    """What RLlib reads from a runner's env (spaces, env count); the simulator itself is `vec_env`."""

    def __init__(self, vec_env: MAPushVecEnv, central_critic: bool) -> None:
        self.vec_env = vec_env
        self.num_envs = vec_env.num_envs
        self.envs = []
        self.single_observation_spaces = {aid: observation_space(central_critic) for aid in AGENT_IDS}
        self.single_action_spaces = {aid: action_space() for aid in AGENT_IDS}
        self.single_observation_space = gym.spaces.Dict(self.single_observation_spaces)
        self.single_action_space = gym.spaces.Dict(self.single_action_spaces)

    def close_extras(self, **kwargs: Any) -> None:
        self.vec_env.close()


@dataclass
class Rollout:
    """T steps of N envs x A agents, laid out (N, A, T, ...) as numpy for slicing into episodes."""

    obs: np.ndarray  # (N, A, T, D) observation each action was taken on
    last_obs: np.ndarray  # (N, A, T, D) observation after each step, before any reset
    actions: np.ndarray  # (N, A, T, 3) as sampled (before clipping for the env)
    rewards: np.ndarray  # (N, A, T) float64, as RLlib stores rewards
    extras: dict[str, np.ndarray]  # (N, A, T, ...) model outputs stored in the episodes
    terminated: np.ndarray  # (N, T) bool
    truncated: np.ndarray  # (N, T) bool
    chunk_start_t: np.ndarray  # (N,) step of its episode at which each env's first chunk starts
    seconds_per_step: float  # wall time per step of the whole batch

    @classmethod
    def from_batch(cls, batch: RolloutBatch, chunk_start_t: np.ndarray, seconds_per_step: float) -> Rollout:
        """The recorded (T, N, A, ...) tensors as host arrays per env."""

        def per_env(x: torch.Tensor) -> np.ndarray:  # (T, N, A, ...) -> contiguous (N, A, T, ...)
            return np.ascontiguousarray(x.movedim(0, 2).cpu().numpy())

        extras = {key: per_env(value) for key, value in batch.extras.items()}
        if batch.weights_seq_no is not None:
            T, N, A = batch.rewards.shape
            extras[WEIGHTS_SEQ_NO] = np.full((N, A, T), batch.weights_seq_no, dtype=np.int64)
        return cls(
            obs=per_env(batch.obs), last_obs=per_env(batch.last_obs), actions=per_env(batch.actions),
            rewards=per_env(batch.rewards).astype(np.float64), extras=extras,
            terminated=batch.terminated.T.cpu().numpy(), truncated=batch.truncated.T.cpu().numpy(),
            chunk_start_t=chunk_start_t, seconds_per_step=seconds_per_step,
        )


class BatchedEnvRunner(MultiAgentEnvRunnerBase):
    """A `MultiAgentEnvRunner` whose N envs are one `MAPushVecEnv`; use via `env_runner_cls`."""

    def __init__(self, config: Any, **kwargs: Any) -> None:
        torch.set_num_threads(1)  # the simulator has its own thread pool; small MLPs gain nothing from more
        self.vec_env: MAPushVecEnv | None = None
        super().__init__(config=config, **kwargs)
        _check_supported(self.config)
        self.agent_modules = {aid: self.config.policy_mapping_fn(aid, None) for aid in AGENT_IDS}
        # module id -> indices of the agents it acts for, in agent order
        self.module_agents: dict[str, list[int]] = defaultdict(list)
        for index, aid in enumerate(AGENT_IDS):
            self.module_agents[self.agent_modules[aid]].append(index)
        # The same agents as slices where they are contiguous: indexing a GPU tensor with a list copies the list
        # to the GPU first, which waits for the queued GPU work.
        self._agent_index = {
            module_id: _as_index(agents, self.module_device) for module_id, agents in self.module_agents.items()
        }
        self._bulk = bool(self.config.learner_config_dict.get(BULK_LEARNER_BATCH, False))
        self.episode_window = EpisodeWindow(self.config.metrics_num_episodes_for_smoothing)
        space = action_space()
        self._action_low = torch.as_tensor(space.low, device=self.module_device)
        self._action_high = torch.as_tensor(space.high, device=self.module_device)
        self._fresh = True  # the simulator holds new, not yet stepped episodes in every env
        self._previous: Rollout | None = None  # the last rollout, for the lookback of continuing chunks
        self._episode_ids: list[str] = []
        self._agent_episode_ids: list[list[str]] = []

    # ------------------------------------------------------------------------------------------ env

    def make_env(self) -> None:
        if self.env is not None:
            self.env.close()
        env_config = self.config.env_config
        self.vec_env = make_vec_env(env_config, env_id_offset=(self.worker_index or 0) * envs_per_runner(env_config))
        self.env = SimulatorSpaces(self.vec_env, bool(env_config.get("central_critic", False)))
        self.num_envs = self.vec_env.num_envs
        self.needs_initial_reset = True
        self._fresh = True
        self._previous = None
        env_context = EnvContext(env_config, worker_index=self.worker_index, num_workers=self.num_workers)
        make_callback(
            "on_environment_created",
            callbacks_objects=self.callback_objects,
            callbacks_functions=self.config.callbacks_on_environment_created,
            kwargs=dict(env_runner=self, metrics_logger=self.metrics, env=self.env, env_context=env_context),
        )

    def make_module(self) -> None:
        """The policies live where the simulator's tensors do (`simulator.device`), not on RLlib's runner device."""
        self.module_device = torch.device(self.config.env_config.get("sim", {}).get("device", "cpu"))
        super().make_module()

    def restart_episodes(self) -> None:
        """Reset every env and begin new episodes at the next sample (e.g. after the task schedule was restored)."""
        self._fresh = False
        self.needs_initial_reset = True

    # --------------------------------------------------------------------------------------- sample

    def sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool | None = None,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list[MultiAgentEpisode] | list[RolloutBatch]:
        """Step all envs ceil(num_timesteps / N) times (default: rollout_fragment_length).

        Returns the episode chunks, or with the bulk learner batch the one `RolloutBatch`.
        """
        if self.vec_env is None:
            raise ValueError(f"{self} has no env (the local runner samples only without remote runners)")
        if num_episodes is not None:
            raise NotImplementedError(
                "BatchedEnvRunner samples by timesteps only; evaluate policies with mapush_rllib.evaluate"
            )
        explore = self.config.explore if explore is None else explore
        per_step = self.num_envs * (len(AGENT_IDS) if self.config.count_steps_by == "agent_steps" else 1)
        if num_timesteps is None:
            num_steps = self.config.get_rollout_fragment_length(self.worker_index)
        else:
            num_steps = max(1, -(-num_timesteps // per_step))
        self.metrics.log_value(WEIGHTS_SEQ_NO, self.weights_seq_no, window=1)
        with self.metrics.log_time(SAMPLE_TIMER):
            if force_reset or self.needs_initial_reset:
                self._start_new_episodes()
            chunk_start_t = None if self._bulk else self.vec_env.step_count.cpu().numpy().copy()
            batch, finished, seconds_per_step = self._rollout(num_steps, explore, random_actions)
            if self._bulk:
                samples = [batch]
            else:
                rollout = Rollout.from_batch(batch, chunk_start_t, seconds_per_step)
                samples = self._episodes(rollout)
                self._previous = rollout
            self._log_sample_metrics(num_steps, seconds_per_step, finished)
            make_callback(
                "on_sample_end",
                callbacks_objects=self.callback_objects,
                callbacks_functions=self.config.callbacks_on_sample_end,
                kwargs=dict(env_runner=self, metrics_logger=self.metrics, samples=samples),
            )
        return samples

    def _start_new_episodes(self) -> None:
        if not self._fresh:
            self.vec_env.reset()
        self._fresh = True
        self.needs_initial_reset = False
        self._previous = None
        if not self._bulk:  # the bulk batch has no episode objects
            self._episode_ids = [uuid.uuid4().hex for _ in range(self.num_envs)]
            self._agent_episode_ids = [[uuid.uuid4().hex for _ in AGENT_IDS] for _ in range(self.num_envs)]

    def _rollout(
        self, num_steps: int, explore: bool, random_actions: bool
    ) -> tuple[RolloutBatch, list[EpisodeStats], float]:
        """Step every env `num_steps` times, recording into (T, N, A, ...) tensors on the runner's device.

        Returns the recording, the stats of the episodes that ended, and the wall time per step.
        """
        env, T, N, A = self.vec_env, num_steps, self.num_envs, len(AGENT_IDS)
        central = bool(self.config.env_config.get("central_critic", False))
        device = self.module_device
        self.module.foreach_module(lambda module_id, module: module.eval())
        obs = agent_observations(env.obs, env.state, central).to(device)
        obs_buf = torch.empty((T, *obs.shape), device=device)
        last_obs_buf = torch.empty_like(obs_buf)
        act_buf = torch.empty((T, N, A, self._action_low.shape[0]), device=device)
        rew_buf = torch.empty((T, N, A), device=device)
        term_buf = torch.empty((T, N), dtype=torch.bool, device=device)
        trunc_buf = torch.empty_like(term_buf)
        extras_buf: dict[str, torch.Tensor] = {}
        finished: list[EpisodeStats] = []
        started = time.perf_counter()
        for t in range(T):
            obs_buf[t] = obs
            if random_actions:
                actions = torch.rand(N, A, act_buf.shape[-1], device=device) * 2 - 1
                outputs = {}
            else:
                with self.metrics.log_time(RLMODULE_INFERENCE_TIMER):
                    actions, outputs = self._act(obs, explore)
            for key, value in outputs.items():
                if key not in extras_buf:
                    extras_buf[key] = torch.empty((T, *value.shape), dtype=value.dtype, device=device)
                extras_buf[key][t] = value
            act_buf[t] = actions
            with self.metrics.log_time(ENV_STEP_TIMER):
                result = env.step(self._actions_for_env(actions))
            rew_buf[t] = result.rewards
            term_buf[t] = result.terminated
            trunc_buf[t] = result.truncated
            last_obs_buf[t] = agent_observations(result.obs, result.state, central)
            if result.episodes is not None:
                finished.append(result.episodes)
            obs = agent_observations(result.next_obs, result.next_state, central).to(device)
        self._fresh = bool(result.done.all())
        seconds_per_step = (time.perf_counter() - started) / T
        batch = RolloutBatch(
            obs=obs_buf, last_obs=last_obs_buf, actions=act_buf, rewards=rew_buf, extras=extras_buf,
            terminated=term_buf, truncated=trunc_buf, agent_ids=AGENT_IDS, module_agents=dict(self.module_agents),
            weights_seq_no=self.weights_seq_no if extras_buf else None,
        )
        return batch, finished, seconds_per_step

    def _act(self, obs: torch.Tensor, explore: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Actions (N, A, 3) and model outputs {column: (N, A, ...)} of every module, one forward each.

        Same computation as RLlib's GetActions connector: a distribution from the module's
        ACTION_DIST_INPUTS, sampled (or its deterministic version when not exploring), and the logp.
        """
        N, A = obs.shape[:2]
        actions = torch.empty((N, A, self._action_low.shape[0]), device=obs.device)
        outputs: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for module_id, agents in self._agent_index.items():
                module = self.module[module_id]
                count = len(self.module_agents[module_id])
                batch = {Columns.OBS: obs[:, agents].reshape(N * count, -1).contiguous()}
                # The hooks behind forward_exploration/inference, minus their per-call train/eval toggling
                # (the runner's modules stay in eval mode).
                out = module_forward(module, batch, explore)
                inputs = out[Columns.ACTION_DIST_INPUTS]
                dist_cls = (
                    module.get_exploration_action_dist_cls() if explore else module.get_inference_action_dist_cls()
                )
                dist = dist_cls.from_logits(inputs)
                if not explore:
                    dist = dist.to_deterministic()
                sampled = dist.sample()
                actions[:, agents] = sampled.reshape(N, count, -1)
                for column, value in ((Columns.ACTION_DIST_INPUTS, inputs), (Columns.ACTION_LOGP, dist.logp(sampled))):
                    value = value.reshape(N, count, *value.shape[1:])
                    if column not in outputs:
                        outputs[column] = torch.empty((N, A, *value.shape[2:]), dtype=value.dtype, device=obs.device)
                    outputs[column][:, agents] = value
        return actions, outputs

    def _actions_for_env(self, actions: torch.Tensor) -> torch.Tensor:
        """RLlib's NormalizeAndClipActions for the action Box, with the same float32 arithmetic."""
        low, high = self._action_low, self._action_high
        if self.config.normalize_actions:
            return torch.minimum(torch.maximum(low + (actions + 1.0) * (high - low) / 2.0, low), high)
        if self.config.clip_actions:
            return torch.minimum(torch.maximum(actions, low), high)
        return actions

    # ------------------------------------------------------------------------------------- episodes

    def _episodes(self, rollout: Rollout) -> list[MultiAgentEpisode]:
        """Cut the rollout into episode chunks: done ones by end step, then ongoing ones by env (RLlib's order).

        Env i's steps split at its done steps. A chunk that continues an episode from the previous
        rollout carries up to `episode_lookback_horizon` steps of it as lookback, as `Episode.cut` does.
        """
        done = rollout.terminated | rollout.truncated  # (N, T)
        N, T = done.shape
        horizon = self.config.episode_lookback_horizon
        done_chunks, ongoing_chunks = [], []
        for i in range(N):
            start = 0
            lookback = 0
            if self._previous is not None:  # as much of the episode's past as `cut()` keeps, within the last rollout
                lookback = min(horizon, int(rollout.chunk_start_t[i]), self._previous.rewards.shape[2])
            t_started = int(rollout.chunk_start_t[i])
            for end in np.flatnonzero(done[i]).tolist():
                done_chunks.append(((end, i), self._episode(rollout, i, start, end + 1, lookback, t_started)))
                self._episode_ids[i] = uuid.uuid4().hex
                self._agent_episode_ids[i] = [uuid.uuid4().hex for _ in AGENT_IDS]
                start, lookback, t_started = end + 1, 0, 0
            if start < T:
                ongoing_chunks.append(self._episode(rollout, i, start, T, lookback, t_started))
        done_chunks.sort(key=lambda item: item[0])  # in the order the episodes ended, as RLlib returns them
        return [episode for _, episode in done_chunks] + ongoing_chunks

    def _episode(self, r: Rollout, i: int, start: int, stop: int, lookback: int, t_started: int) -> MultiAgentEpisode:
        """Env i's steps [start, stop) as one MultiAgentEpisode chunk (numpy, like `Episode.to_numpy()`)."""
        length = stop - start
        terminated, truncated = bool(r.terminated[i, stop - 1]), bool(r.truncated[i, stop - 1])
        prev = self._previous
        ma_episode = MultiAgentEpisode(
            id_=self._episode_ids[i],
            observation_space=self.env.single_observation_spaces,
            action_space=self.env.single_action_spaces,
            agent_to_module_mapping_fn=self.config.policy_mapping_fn,
            agent_module_ids=dict(self.agent_modules),
            env_t_started=t_started,
        )

        def steps(now: np.ndarray, before: np.ndarray | None, a: int) -> np.ndarray:
            """Env i, agent a, steps [start, stop) of `now`, after `lookback` steps from the end of `before`."""
            if lookback == 0:
                return now[i, a, start:stop]
            if before is None:  # a column the last rollout did not have (it took random actions): zeros
                past = np.zeros((lookback, *now.shape[3:]), dtype=now.dtype)
            else:
                past = before[i, a, before.shape[2] - lookback :]
            return np.concatenate([past, now[i, a, start:stop]])

        for a, aid in enumerate(AGENT_IDS):
            obs = np.concatenate([steps(r.obs, prev and prev.obs, a), r.last_obs[i, a, stop - 1 : stop]])
            ma_episode.agent_episodes[aid] = SingleAgentEpisode(
                id_=self._agent_episode_ids[i][a],
                agent_id=aid,
                module_id=self.agent_modules[aid],
                multi_agent_episode_id=ma_episode.id_,
                observations=InfiniteLookbackBuffer(obs, lookback=lookback),
                observation_space=self.env.single_observation_spaces[aid],
                infos=InfiniteLookbackBuffer([{} for _ in range(lookback + length + 1)], lookback=lookback),
                actions=InfiniteLookbackBuffer(steps(r.actions, prev and prev.actions, a), lookback=lookback),
                action_space=self.env.single_action_spaces[aid],
                rewards=InfiniteLookbackBuffer(steps(r.rewards, prev and prev.rewards, a), lookback=lookback),
                extra_model_outputs={
                    key: InfiniteLookbackBuffer(steps(value, prev and prev.extras.get(key), a), lookback=lookback)
                    for key, value in r.extras.items()
                },
                terminated=terminated,
                truncated=truncated,
                t_started=t_started,
                len_lookback_buffer=lookback,
            )
            ma_episode.env_t_to_agent_t[aid] = InfiniteLookbackBuffer(
                list(range(t_started - lookback, t_started + length + 1)), lookback=lookback
            )
            ma_episode.agent_t_started[aid] = t_started
        ma_episode.env_t = t_started + length
        ma_episode.is_terminated, ma_episode.is_truncated = terminated, truncated
        finish_episode_chunk(ma_episode, lookback, time.perf_counter())
        return ma_episode

    # -------------------------------------------------------------------------------------- metrics

    def _log_sample_metrics(self, num_steps: int, seconds_per_step: float, finished: list[EpisodeStats]) -> None:
        """RLlib's step/episode counters and episode metrics, and the MAPush metrics, logged in bulk."""
        env_steps = num_steps * self.num_envs
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED, env_steps, reduce="sum")
        self.metrics.log_value(NUM_ENV_STEPS_SAMPLED_LIFETIME, env_steps, reduce="lifetime_sum", with_throughput=True)
        for aid in self.agent_modules:
            self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED, aid), env_steps, reduce="sum")
            self.metrics.log_value((NUM_AGENT_STEPS_SAMPLED_LIFETIME, aid), env_steps, reduce="lifetime_sum")
        for module_id, agents in self.module_agents.items():
            self.metrics.log_value((NUM_MODULE_STEPS_SAMPLED, module_id), env_steps * len(agents), reduce="sum")
            self.metrics.log_value(
                (NUM_MODULE_STEPS_SAMPLED_LIFETIME, module_id), env_steps * len(agents), reduce="lifetime_sum"
            )
        if not finished:
            self.episode_window.log(self.metrics)
            return
        stats = EpisodeStats.cat(finished).to("cpu")
        self.episode_window.add(stats)
        self.episode_window.log(self.metrics)
        self.metrics.log_value(NUM_EPISODES, len(stats), reduce="sum")
        self.metrics.log_value(NUM_EPISODES_LIFETIME, len(stats), reduce="lifetime_sum")
        # RLlib's smoothing window per runner, as MultiAgentEnvRunner._log_episode_metrics splits it
        window = max(1, -(-self.config.metrics_num_episodes_for_smoothing // (self.config.num_env_runners or 1)))
        returns = stats.returns.double()  # (n, A)
        lengths = stats.length_steps.double()
        per_episode = {  # RLlib's episode metrics (MultiAgentEnvRunner._log_episode_metrics), one value per episode
            (EPISODE_LEN_MEAN,): (lengths, "mean"),
            (EPISODE_LEN_MIN,): (lengths, "min"),
            (EPISODE_LEN_MAX,): (lengths, "max"),
            (EPISODE_RETURN_MEAN,): (returns.sum(dim=1), "mean"),
            (EPISODE_RETURN_MIN,): (returns.sum(dim=1), "min"),
            (EPISODE_RETURN_MAX,): (returns.sum(dim=1), "max"),
            (EPISODE_DURATION_SEC_MEAN,): (lengths * seconds_per_step, "mean"),
        }
        for index, aid in enumerate(AGENT_IDS):
            per_episode[(EPISODE_AGENT_RETURN_MEAN, aid)] = (returns[:, index], "mean")
            per_episode[(EPISODE_AGENT_STEPS, aid)] = (lengths, "mean")
        for module_id, agents in self.module_agents.items():
            per_episode[(EPISODE_MODULE_RETURN_MEAN, module_id)] = (returns[:, agents].sum(dim=1), "mean")
        for key, (values, reduce) in per_episode.items():
            for value in values[-window:].tolist():  # a windowed reduction keeps only the last `window` values
                self.metrics.log_value(key, value, reduce=reduce, window=window)

    def get_metrics(self) -> dict:
        return self.metrics.reduce()


def _check_supported(config: Any) -> None:
    """Refuse settings whose effect the batched runner would silently drop."""
    if has_custom_connectors(config):
        raise ValueError(
            "env_runners(env_to_module_connector / module_to_env_connector): custom connectors are not "
            "applied by BatchedEnvRunner; use runner: stock"
        )
    if config.batch_mode != "truncate_episodes":
        raise ValueError(f"env_runners(batch_mode={config.batch_mode!r}): BatchedEnvRunner needs 'truncate_episodes'")


def _as_index(agents: list[int], device: torch.device) -> slice | torch.Tensor:
    """Agent indices as a slice where contiguous (no index tensor), else as an index tensor on `device`."""
    if agents == list(range(agents[0], agents[-1] + 1)):
        return slice(agents[0], agents[-1] + 1)
    return torch.as_tensor(agents, device=device)
