"""`MAPushPPO`: RLlib's PPO plus the env-side state a checkpoint must carry.

RLlib checkpoints the modules, optimizers and connectors, but not what lives inside the envs. The
curriculum's task schedule (`MAPushVecEnv.task_schedule`) is such state: without this class a restored
run would start its curriculum over. `get_state` collects `task_schedule.state_dict()` from every env
of every env runner (keyed by runner index) into `algorithm_state.pkl`; `set_state` hands each runner
its part back through `load_state_dict`. Schedules without `state_dict` are skipped.

After a restore the optimizers hold the checkpoint's learning rate (RLlib restores optimizer
param groups), while the learner's schedule holds this run's; `set_state` re-applies the schedule's
value at once, so the first update after a PBT exploit already uses the new learning rate. Then every
restore (a PBT exploit, a resume, `restore_from_path`) checks that the live entropy coefficients, learning
rates and env reward scales equal the config, and fails loudly otherwise (`verify_live_settings`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch
from ray.rllib.algorithms.ppo import PPO

from mapush_rllib.env import runner_vec_envs
from mapush_rllib.live_settings import verify_live_settings

ENV_STATE_KEY = "mapush_env_state"


def env_state(env_runner: Any) -> tuple[int, list[Any]] | None:
    """(runner index, [task_schedule.state_dict() per simulator]) of one runner; None without envs."""
    vec_envs = runner_vec_envs(env_runner)
    if not vec_envs:
        return None
    states = []
    for vec_env in vec_envs:
        schedule = vec_env.task_schedule
        states.append(schedule.state_dict() if hasattr(schedule, "state_dict") else None)
    return int(env_runner.worker_index or 0), states


def load_env_state(env_runner: Any, states_by_runner: dict[int, list[Any]]) -> None:
    """Give every simulator of this runner its saved task-schedule state (if any was saved for it)."""
    states = states_by_runner.get(int(env_runner.worker_index or 0))
    if not states:
        return
    for vec_env, state in zip(runner_vec_envs(env_runner), states):
        if state is not None and hasattr(vec_env.task_schedule, "load_state_dict"):
            vec_env.task_schedule.load_state_dict(state)


class MAPushPPO(PPO):
    """PPO whose checkpoints include every env runner's task-schedule state (see module docstring)."""

    def setup(self, config: Any) -> None:
        torch.set_num_threads(1)  # small MLPs; the simulator's thread pool needs the cores
        super().setup(config)

    def get_state(
        self,
        components: str | Collection[str] | None = None,
        *,
        not_components: str | Collection[str] | None = None,
        **kwargs: Any,
    ) -> dict:
        state = super().get_state(components, not_components=not_components, **kwargs)
        if self._check_component(ENV_STATE_KEY, components, not_components):
            collected = self.env_runner_group.foreach_env_runner(env_state, local_env_runner=True)
            state[ENV_STATE_KEY] = dict(item for item in collected if item is not None)
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if state.get(ENV_STATE_KEY):
            states = state[ENV_STATE_KEY]
            self.env_runner_group.foreach_env_runner(
                lambda env_runner: load_env_state(env_runner, states), local_env_runner=True
            )
        for call in self.learner_group.foreach_learner(_reapply_scheduled_learning_rates):
            call.get()
        verify_live_settings(self)


def _reapply_scheduled_learning_rates(learner: Any) -> None:
    for optimizer, schedule in learner._optimizer_lr_schedules.items():
        learner._set_optimizer_lr(optimizer, float(schedule.get_current_value()))
