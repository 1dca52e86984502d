"""The batched MAPush pushing task over any physics backend: E parallel envs x 2 agents, torch tensors.

This is the one interface every backend sits behind (embedded MuJoCo, MuJoCo Warp, Isaac Gym through the
simulator server). It owns everything that makes the physics the `go1push_mid` task -- reset
distributions, observations, termination, rewards, per-episode metrics -- so these are identical on
every backend.

Step order (spec §2.3, with MAPush's reset-step quirks fixed):
  1. command = 0.5 * clip(action, -1, 1) -> body-frame (vx, vy, yaw rate), held for one 20 ms policy step;
  2. the backend advances the physics (4 x 5 ms);
  3. success / exception / timeout, every reward term and the observation are computed on this
     *pre-reset* state, so a done env returns its terminal observation and rewards of its last step;
  4. done envs are reset in place (auto-reset) and `next_obs` holds the first observation of their new
     episode. MAPush instead returns only the post-reset observation and computes the dense rewards of
     the done step on the new episode's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from mapush_rllib.sim.backend import PhysicsBackend
from mapush_rllib.sim.config import NUM_AGENTS, SimConfig
from mapush_rllib.sim.factory import make_backend
from mapush_rllib.task import rng
from mapush_rllib.task.config import REWARD_TERMS, RewardConfig, TaskConfig
from mapush_rllib.task.metrics import (
    COLLABORATION_MARGIN_M,
    CONTACT_FORCE_THRESHOLD_N,
    ENGAGEMENT_DISTANCE_M,
    EpisodeStats,
)
from mapush_rllib.task.observations import (
    GLOBAL_STATE_DIM,
    OBS_DIM,
    distance_outside_box,
    global_state,
    observations,
    rotate,
    tilt_from_quat,
    yaw_from_quat,
)
from mapush_rllib.task.rewards import RewardFunction, RewardInputs
from mapush_rllib.task.task_params import TaskParams

FRICTION_EPISODE = 2**31 - 1  # the rng "episode" of the per-env friction draw
ACTION_SCALE = 0.5  # command = 0.5 * clip(a, -1, 1): +-0.5 m/s and +-0.5 rad/s (spec §2.2, HARL path)


class TaskSchedule(Protocol):
    """Chooses task parameters at each env's reset (the curriculum implements this)."""

    def episode_end(self, env_ids: torch.Tensor, success: torch.Tensor) -> None:
        """Outcomes of the episodes that just ended in `env_ids`; (n,) bool."""

    def task_params(self, env_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task parameters for the new episodes of `env_ids`, keyed as TASK_PARAM_FIELDS.

        A schedule whose values are always valid (checked with `task_param_violations` beforehand) may set a
        class attribute `task_params_validated = True`; the env then skips re-checking them at every reset.
        """


@dataclass
class StepResult:
    """One policy step of all envs. E = num_envs, A = num_agents, K = number of reward terms."""

    obs: torch.Tensor  # (E, A, 8) at the end of the step, before any reset: terminal obs of done envs
    next_obs: torch.Tensor  # (E, A, 8) what the agents observe next: the new episode's first obs where done
    state: torch.Tensor  # (E, 17) global state, before any reset
    next_state: torch.Tensor  # (E, 17) global state after resets
    rewards: torch.Tensor  # (E, A)
    reward_terms: torch.Tensor  # (E, A, K) scaled, in REWARD_TERMS order
    terminated: torch.Tensor  # (E,) bool: success or exception
    truncated: torch.Tensor  # (E,) bool: time limit reached without termination
    success: torch.Tensor  # (E,) bool
    exception: torch.Tensor  # (E,) bool
    episodes: EpisodeStats | None  # the episodes that ended in this step, or None

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated


class MAPushVecEnv:
    """E envs of the MAPush mid-level pushing task, auto-resetting, with per-env task parameters.

    E is `sim.num_envs`. Env k plays the episodes of global env id `env_id_offset + k` (or `env_ids[k]`): resets
    are drawn from (seed, global env id, episode index), so envs with the same id play the same episodes.
    """

    num_agents = NUM_AGENTS

    def __init__(
        self,
        sim: SimConfig | None = None,
        task: TaskConfig | None = None,
        rewards: RewardConfig | None = None,
        *,
        seed: int = 0,
        env_id_offset: int = 0,
        env_ids: torch.Tensor | None = None,
        backend: PhysicsBackend | None = None,
        task_schedule: TaskSchedule | None = None,
    ) -> None:
        self.sim = sim or SimConfig()
        self.task_config = task or TaskConfig()
        self.num_envs = self.sim.num_envs
        self.device = torch.device(self.sim.device)
        self.physics = self.sim.physics
        self.dt = self.physics.policy_dt_s
        self.max_episode_steps = int(round(self.task_config.episode_length_s / self.dt))
        self.backend = backend or make_backend(self.sim, self.num_envs)
        self._backend_is_torch = getattr(self.backend, "array_api", "numpy") == "torch"
        self.task = TaskParams(self.num_envs, self.task_config, self.physics, self.device)
        self.task_schedule = task_schedule
        self.reward_fn = RewardFunction(rewards or RewardConfig(), NUM_AGENTS, self.device)
        self.seed = seed
        if env_ids is None:  # global env ids: which episodes the envs play (resets are drawn from them)
            env_ids = torch.arange(env_id_offset, env_id_offset + self.num_envs)
        elif len(env_ids) != self.num_envs:
            raise ValueError(f"env_ids: {len(env_ids)} ids for {self.num_envs} envs")
        self.env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device)
        self.episode_index = torch.full((self.num_envs,), -1, dtype=torch.long, device=self.device)

        E, A, K = self.num_envs, NUM_AGENTS, len(REWARD_TERMS)
        zeros = lambda *shape, dtype=torch.float32: torch.zeros(*shape, dtype=dtype, device=self.device)  # noqa: E731
        lo, hi = self.physics.box_friction_range
        friction_u = rng.uniform(seed, self.env_ids, torch.full_like(self.env_ids, FRICTION_EPISODE), 1)[:, 0]
        self.box_friction = lo + (hi - lo) * friction_u  # drawn once per env, as MAPush does at creation
        self.target_xy = zeros(E, 2)
        self.prev_distance = zeros(E)
        self.initial_distance = zeros(E)
        self.episode_box_size = zeros(E)  # the physical box of the running episode
        self._applied_box = torch.full((E, 2), float("nan"), device=self.device)  # (size, mass) in the backend
        self._box_version_everywhere = -1  # task.box_version when every env's box was last brought up to date
        self.step_count = zeros(E, dtype=torch.long)
        self.ep_engaged = zeros(E, A)
        self.ep_impulse = zeros(E, A)
        self.ep_collab = zeros(E)
        self.ep_terms = zeros(E, A, K)
        self.obs = zeros(E, A, OBS_DIM)
        self.state = zeros(E, GLOBAL_STATE_DIM)
        self.reset()

    # ----------------------------------------------------------------------------------------- public API

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Start a new episode in every env. Returns the observations, (E, A, 8)."""
        if seed is not None:
            self.seed = seed
            self.episode_index.fill_(-1)
        self._reset_envs(torch.arange(self.num_envs, device=self.device), outcome=None)
        return self.obs

    def step(self, actions: torch.Tensor) -> StepResult:
        """Apply raw policy actions (E, A, 3), advance one 50 Hz step, auto-reset done envs."""
        actions = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        commands = ACTION_SCALE * actions.clamp(-1.0, 1.0)
        self.backend.step(self._to_backend(commands))
        s = self._read_state()
        self.step_count += 1

        box_xy = s["box_pos"][:, :2]
        box_yaw = yaw_from_quat(s["box_quat"])
        agent_xy = s["agent_pos"][..., :2]
        half = self.episode_box_size / 2
        distance = (box_xy - self.target_xy).norm(dim=-1)
        finite = torch.stack([torch.isfinite(v).flatten(1).all(dim=1) for v in s.values()]).all(dim=0)
        agents_apart = (s["agent_pos"][:, 0] - s["agent_pos"][:, 1]).norm(dim=-1)
        lifted = (s["box_pos"][:, 2] - self.physics.box_height_m / 2).abs() > self.task_config.box_lift_limit_m
        tipped = tilt_from_quat(s["box_quat"]) > self.task_config.box_tilt_limit_rad
        success = (distance < self.task_config.success_radius_m) & finite
        exception = (agents_apart < self.task_config.agent_collision_distance_m) | lifted | tipped | ~finite
        if "agent_fallen" in s:  # legged backends (Isaac Gym): a fallen robot ends the episode (spec §1.4)
            exception |= (s["agent_fallen"] > 0.5).any(dim=1)
        terminated = success | exception
        truncated = (self.step_count >= self.max_episode_steps) & ~terminated

        force = torch.nan_to_num(s["agent_box_force"])
        self.ep_impulse += force * self.dt
        inputs = RewardInputs(
            box_pos=s["box_pos"], box_yaw=box_yaw, box_lin_vel=s["box_lin_vel"], box_half_size=half,
            target_xy=self.target_xy, agent_pos=s["agent_pos"], distance=distance,
            prev_distance=self.prev_distance, success=success, exception=exception, agent_box_force=force,
            expanded_ocb=self.reward_fn.config.expanded_ocb,
        )
        rewards, terms = self.reward_fn(inputs, _shares(force), _shares(self.ep_impulse))
        rewards, terms = torch.nan_to_num(rewards), torch.nan_to_num(terms)

        in_box = rotate(agent_xy - box_xy[:, None], -box_yaw[:, None])
        engaged = (force > CONTACT_FORCE_THRESHOLD_N) | (distance_outside_box(in_box, half) < ENGAGEMENT_DISTANCE_M)
        near_centre = (agent_xy - box_xy[:, None]).norm(dim=-1) < (half + COLLABORATION_MARGIN_M)[:, None]
        self.ep_engaged += engaged.float()
        self.ep_collab += near_centre.all(dim=1).float()
        self.ep_terms += terms
        self.prev_distance = distance

        obs = observations(self.target_xy, box_xy, box_yaw, agent_xy, s["agent_yaw"])
        state = global_state(
            self.target_xy, box_xy, box_yaw, agent_xy, s["agent_yaw"], s["agent_lin_vel"], s["agent_yaw_rate"]
        )
        self.obs, self.state = obs, state
        done = terminated | truncated
        episodes = None
        ids = done.nonzero().squeeze(1)  # a host sync (one per step on GPUs): which envs reset
        if len(ids):
            episodes = self._episode_stats(ids, success, exception, truncated, distance)
            self.obs, self.state = obs.clone(), state.clone()
            self._reset_envs(ids, outcome=success[ids])
        return StepResult(
            obs=obs, next_obs=self.obs, state=state, next_state=self.state, rewards=rewards, reward_terms=terms,
            terminated=terminated, truncated=truncated, success=success, exception=exception, episodes=episodes,
        )

    def set_task_params(self, env_ids: torch.Tensor | list[int], **values: torch.Tensor | float | list[float]) -> None:
        """Change task parameters of some envs; applied at their next reset (see TaskParams.set)."""
        self.task.set(torch.as_tensor(env_ids, device=self.device), **values)

    def set_reward_scales(self, scales: dict | torch.Tensor) -> None:
        """Change reward scales live (see RewardFunction.set_scales)."""
        self.reward_fn.set_scales(scales)

    @property
    def reward_scales(self) -> dict[str, dict[str, float]]:
        return self.reward_fn.scales_dict()

    def close(self) -> None:
        self.backend.close()

    # ------------------------------------------------------------------------------------------ internals

    def _to_backend(self, tensor: torch.Tensor) -> torch.Tensor | np.ndarray:
        return tensor if self._backend_is_torch else tensor.detach().cpu().numpy()

    def _read_state(self) -> dict[str, torch.Tensor]:
        return {
            key: torch.as_tensor(value, device=self.device).to(torch.float32)
            for key, value in self.backend.state().items()
        }

    def _episode_stats(
        self, ids: torch.Tensor, success: torch.Tensor, exception: torch.Tensor, truncated: torch.Tensor,
        distance: torch.Tensor,
    ) -> EpisodeStats:
        length = self.step_count[ids]
        start = self.initial_distance[ids]
        to_go = (start - self.task_config.success_radius_m).clamp(min=1e-6)
        progress = torch.where(success[ids], 1.0, ((start - distance[ids]) / to_go).clamp(0.0, 1.0))
        limit_s = torch.full_like(length, self.max_episode_steps, dtype=torch.float32) * self.dt
        return EpisodeStats(
            env_ids=ids,
            success=success[ids],
            exception=exception[ids],
            timeout=truncated[ids],
            length_steps=length,
            finish_time_s=torch.where(success[ids], length.float() * self.dt, limit_s),
            collaboration_steps=self.ep_collab[ids],
            engaged_steps=self.ep_engaged[ids],
            contact_impulse=self.ep_impulse[ids],
            term_sums=self.ep_terms[ids],
            initial_distance_m=start,
            task_progress=progress,
            box_size_m=self.episode_box_size[ids],
        )

    def _reset_envs(self, ids: torch.Tensor, outcome: torch.Tensor | None) -> None:
        if self.task_schedule is not None:
            if outcome is not None:
                self.task_schedule.episode_end(ids, outcome)
            params = self.task_schedule.task_params(ids)
            if params:
                self.task.set(ids, trusted=getattr(self.task_schedule, "task_params_validated", False), **params)
        self._apply_box(ids)
        self.episode_index[ids] += 1
        draws = rng.uniform(self.seed, self.env_ids[ids], self.episode_index[ids], self.task.num_reset_draws())
        reset = self.task.sample_reset(ids, draws)
        self.backend.reset_envs(
            self._to_backend(ids), self._to_backend(reset.box_pose), self._to_backend(reset.agent_pose),
            self._to_backend(reset.agent_vel),
        )
        self.target_xy[ids] = reset.target_xy
        distance = (reset.target_xy - reset.box_pose[:, :2]).norm(dim=-1)
        self.prev_distance[ids] = distance
        self.initial_distance[ids] = distance
        self.episode_box_size[ids] = self.task.box_size_m[ids]
        self.step_count[ids] = 0
        for buffer in (self.ep_engaged, self.ep_impulse, self.ep_collab, self.ep_terms):
            buffer[ids] = 0.0

        agent_xy, agent_yaw = reset.agent_pose[..., :2], reset.agent_pose[..., 2]
        box_xy, box_yaw = reset.box_pose[:, :2], reset.box_pose[:, 3]
        self.obs[ids] = observations(reset.target_xy, box_xy, box_yaw, agent_xy, agent_yaw)
        self.state[ids] = global_state(
            reset.target_xy, box_xy, box_yaw, agent_xy, agent_yaw, reset.agent_vel[..., :2], reset.agent_vel[..., 2]
        )

    def _apply_box(self, ids: torch.Tensor) -> None:
        """Rebuild the physical box of the envs whose box size or mass parameter changed."""
        if self.task.box_version == self._box_version_everywhere:
            return  # no box parameter was set since every env's box was last checked: skip the host sync
        wanted = torch.stack([self.task.box_size_m[ids], self.task.box_mass_kg[ids]], dim=1)
        changed = (wanted != self._applied_box[ids]).any(dim=1)
        if len(ids) == self.num_envs:
            self._box_version_everywhere = self.task.box_version
        if not bool(changed.any()):
            return
        cids = ids[changed]
        size = wanted[changed, 0]
        extents = torch.stack([size, size, torch.full_like(size, self.physics.box_height_m)], dim=1)
        self.backend.set_box(
            self._to_backend(cids), self._to_backend(extents), self._to_backend(wanted[changed, 1]),
            self._to_backend(self.box_friction[cids]),
        )
        self._applied_box[cids] = wanted[changed]


def _shares(amount: torch.Tensor) -> torch.Tensor:
    """Each agent's share of a non-negative (E, A) amount; an equal split where the total is zero."""
    total = amount.sum(dim=1, keepdim=True)
    equal = torch.full_like(amount, 1.0 / amount.shape[1])
    return torch.where(total > 1e-6, amount / total.clamp(min=1e-9), equal)

