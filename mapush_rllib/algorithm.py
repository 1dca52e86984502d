"""`MAPushPPO`: RLlib's PPO plus the env-side state a checkpoint must carry.

RLlib checkpoints the modules, optimizers and connectors, but not what lives inside the envs. The
curriculum's task schedule (`MAPushVecEnv.task_schedule`) is such state: without this class a restored
run would start its curriculum over. Schedules with `state_dict`/`load_state_dict` are kept:

- in checkpoints: `get_state` collects `task_schedule.state_dict()` from every env of every env runner
  (keyed by runner index) into `algorithm_state.pkl`; `set_state` hands each runner its part back. That
  covers `save_to_path`/`restore_from_path`, `from_checkpoint`, Tune resume and PBT exploits.
- across env rebuilds: before and after the sampling of every training step the runners report their
  states (kept in `env_states`); a runner whose simulators were built since it last reported -- a remote
  runner that RLlib or Ray recreated after a crash, or a `make_env()` call -- gets its last reported state
  back before it samples (a runner that dies while sampling loses that iteration's curriculum progress).
  Ray can restart a dead runner actor without RLlib noticing (a call that reaches the new actor
  succeeds), so this does not rely on `on_env_runners_recreated`.

A runner given a saved state starts new episodes in all its envs at its next sample: the running ones
were started with pre-restore tasks.

After a restore the optimizers hold the checkpoint's learning rate (RLlib restores optimizer
param groups), while the learner's schedule holds this run's; `set_state` re-applies the schedule's
value at once, so the first update after a PBT exploit already uses the new learning rate. Then every
restore (a PBT exploit, a resume, `restore_from_path`) checks that the live entropy coefficients, learning
rates and env reward scales equal the config, and fails loudly otherwise (`verify_live_settings`).
"""

from __future__ import annotations

import hashlib
import logging
import weakref
from collections.abc import Collection
from typing import Any

import numpy as np
import torch
from ray.rllib.algorithms.ppo import PPO
from ray.tune.result import TIMESTEPS_TOTAL

from mapush_rllib.checkpoints import ENV_STATE_KEY, write_manifest
from mapush_rllib.env import ENV_CONFIG_REWARDS, runner_vec_envs
from mapush_rllib.live_settings import LIVE_OVERRIDES, apply_live_settings, reward_scale_table, verify_live_settings
from mapush_rllib.ray_compat import (
    last_result,
    quiet_ray_notices,
    reapply_scheduled_learning_rates,
    request_initial_reset,
    wants_component,
)
from mapush_rllib.result_keys import ENV_STEPS, result_value
from mapush_rllib.task.vec_env import MAPushVecEnv

logger = logging.getLogger(__name__)
# In every process that runs a member: RLlib's notices come while the algorithm is built, before `setup`.
quiet_ray_notices()

EVALUATION_KEY = "mapush_last_evaluation"
#: The simulators of this process whose task schedule holds the run's state (reported or loaded since built).
_HOLD_RUN_STATE: weakref.WeakSet[MAPushVecEnv] = weakref.WeakSet()

#: Learner results that must stay finite: a NaN here means the weights are (or are about to be) NaN.
FINITE_LEARNER_RESULTS = ("total_loss", "policy_loss", "vf_loss", "entropy")

#: A runner's task-schedule states: one `state_dict()` (or None) per simulator of the runner.
RunnerStates = list[Any]


def env_state(env_runner: Any) -> tuple[int, RunnerStates] | None:
    """(runner index, [task_schedule.state_dict() per simulator]) of one runner; None without envs."""
    vec_envs = runner_vec_envs(env_runner)
    if not vec_envs:
        return None
    states = []
    for vec_env in vec_envs:
        schedule = vec_env.task_schedule
        states.append(schedule.state_dict() if hasattr(schedule, "state_dict") else None)
        _HOLD_RUN_STATE.add(vec_env)
    return runner_index(env_runner), states


def report_env_state(env_runner: Any, known: Collection[int]) -> tuple[int, RunnerStates | None] | None:
    """Like `env_state`, but (index, None) for a runner in `known` whose simulators were built since.

    Such a runner's schedules start from scratch; its state is the one the algorithm knows, not theirs.
    """
    vec_envs = runner_vec_envs(env_runner)
    rebuilt = any(vec_env not in _HOLD_RUN_STATE for vec_env in vec_envs)
    if vec_envs and rebuilt and runner_index(env_runner) in known:
        return runner_index(env_runner), None
    return env_state(env_runner)


def load_env_state(env_runner: Any, states_by_runner: dict[int, RunnerStates]) -> bool:
    """Give every simulator of this runner its saved task-schedule state; True if the runner had one.

    The runner then starts new episodes in all its envs at its next sample (see `restart_episodes`).
    """
    states = states_by_runner.get(runner_index(env_runner))
    vec_envs = runner_vec_envs(env_runner)
    if not states or not vec_envs:
        return False
    for vec_env, state in zip(vec_envs, states, strict=True):
        if state is not None and hasattr(vec_env.task_schedule, "load_state_dict"):
            vec_env.task_schedule.load_state_dict(state)
        _HOLD_RUN_STATE.add(vec_env)
    restart_episodes(env_runner)
    return True


def restart_episodes(env_runner: Any) -> None:
    """Make the runner's next sample reset every env and begin new episodes there.

    The batched runner resets its simulator itself; RLlib's stock runner resets its sub-envs when its
    `_needs_initial_reset` flag is set (as after `make_env`), and each `MAPushMultiAgentEnv` is told that
    its next `reset()` must start a new episode.
    """
    restart = getattr(env_runner, "restart_episodes", None)
    if restart is not None:  # a runner that restarts its episodes itself (the batched runner)
        restart()
        return
    if env_runner.env is None:
        return
    for sub_env in env_runner.env.envs:
        sub_env.unwrapped.restart_episode()
    request_initial_reset(env_runner)


def env_state_digest(states: Any) -> str:
    """A short hash of task-schedule states (tensors by dtype, shape and bytes; dicts by sorted key).

    Reported after a restore, so a run can be checked to continue from exactly the state a checkpoint holds
    (e.g. a PBT member continuing from its donor's curriculum).
    """
    digest = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, torch.Tensor):
            obj = obj.detach().cpu().numpy()
        if isinstance(obj, np.ndarray):
            digest.update(f"array{obj.dtype}{obj.shape}".encode())
            digest.update(np.ascontiguousarray(obj).tobytes())
        elif isinstance(obj, dict):
            for key in sorted(obj, key=repr):
                digest.update(repr(key).encode())
                feed(obj[key])
        elif isinstance(obj, (list, tuple)):
            digest.update(b"[")
            for item in obj:
                feed(item)
            digest.update(b"]")
        else:
            digest.update(repr(obj).encode())

    feed(states)
    return digest.hexdigest()[:16]


class TrainingDivergedError(RuntimeError):
    """A member's losses went non-finite: it fails (and Tune restores it per `run.max_failures`), never trains on."""


def non_finite_learner_results(result: dict) -> list[str]:
    """`module/key` of every `FINITE_LEARNER_RESULTS` value in `result["learners"]` that is NaN or infinite."""
    found = []
    for module_id, values in (result.get("learners") or {}).items():
        for key in FINITE_LEARNER_RESULTS:
            value = values.get(key) if isinstance(values, dict) else None
            if value is not None and not np.isfinite(float(value)):
                found.append(f"{module_id}/{key}={float(value)}")
    return found


def same_env_except_seed(old: dict, new: dict) -> bool:
    """Whether two env configs build the same simulators (the reward scales and the seed may differ)."""
    def simulators(env_config: dict) -> dict:
        return {key: value for key, value in env_config.items() if key not in (ENV_CONFIG_REWARDS, "seed")}

    return simulators(old) == simulators(new)


def runner_index(env_runner: Any) -> int:
    return int(env_runner.worker_index or 0)


class MAPushPPO(PPO):
    """PPO whose checkpoints and env runners keep every task schedule's state (see module docstring)."""

    def setup(self, config: Any) -> None:
        torch.set_num_threads(1)  # small MLPs; the simulator's thread pool needs the cores
        self.env_states: dict[int, RunnerStates] = {}  # runner index -> its last reported or loaded states
        self.env_state_restores = 0  # times a rebuilt runner was given its state back
        self.restored_env_state_digest = ""  # env_state_digest of the state the last restore loaded
        self.last_evaluation: dict[str, float] = {}  # the latest evaluation reported (evaluation.py)
        self.evaluation_env = None  # the evaluation batch, built at the first evaluation
        self.evaluation_process = None  # evaluation.asynchronous: the process beside this one (evaluation.py)
        self.evaluation_process_starts = 0
        super().setup(config)

    def cleanup(self) -> None:
        if self.evaluation_process is not None:
            self.evaluation_process.close()
        super().cleanup()

    def __repr__(self) -> str:
        """How Ray names this actor in the dashboard and in log prefixes: by population member."""
        config = getattr(self, "config", None)
        member = getattr(config, "member", None)
        return f"{type(self).__name__}(member {member})" if member is not None else type(self).__name__

    def reset(self, new_config: dict, storage: Any = None) -> bool:
        # Tune (reuse_actors) replaces `self.config` with the trial's dict before `reset_config`: keep ours.
        self._config_before_reset = self.config
        return super().reset(new_config, storage)

    def reset_config(self, new_config: dict) -> bool:
        """Continue as a PBT copy in this process: the member's new entropy coefficients, learning rates and reward
        scales go into the running learner and envs (`apply_live_settings`); Tune then restores the donor's
        checkpoint into it (`set_state`: weights, optimizer, curriculum state; then the invariant check). No new
        process, no simulator rebuild.

        Tune may hand the process to another member (its actor cache matches on resources only): the envs then take
        that member's seed for their next episodes, so no two members draw the same episodes (each env's box
        friction, drawn once when it was built, stays). Any other difference in the env section is refused.
        """
        old = self.config = self._config_before_reset  # what the running components were built from
        new = old.copy(copy_frozen=False).update_from_dict(new_config)
        if not same_env_except_seed(old.env_config, new.env_config):
            logger.warning("not reusing this process for a config with other envs; Tune starts a new one")
            return False
        seed = int(new.env_config["seed"])

        def take_seed(env_runner: Any) -> None:
            env_runner.config.env_config["seed"] = seed
            for vec_env in runner_vec_envs(env_runner):
                vec_env.seed = seed

        self.env_runner_group.foreach_env_runner(take_seed, local_env_runner=True)
        module_ids = sorted(new.policies)
        apply_live_settings(
            self,
            reward_scales=reward_scale_table(new.env_config),
            entropy_coeff={m: new.get_config_for_module(m).entropy_coeff for m in module_ids},
            lr={m: new.get_config_for_module(m).lr for m in module_ids},
        )
        new.freeze()
        self.config = new
        self.__dict__.pop(LIVE_OVERRIDES, None)  # the config now holds those values
        return True

    def step(self) -> dict:
        result = super().step()
        # Tune's TensorBoard logger plots against `timesteps_total` where a result has it: env steps, the budget a
        # user compares runs by, rather than iterations (whose size differs between configs).
        result[TIMESTEPS_TOTAL] = result_value(result, ENV_STEPS, 0)
        diverged = non_finite_learner_results(result)
        if diverged:
            raise TrainingDivergedError(
                f"training diverged at iteration {self.iteration + 1}: {', '.join(diverged)}. "
                "Lower training.lr (or the PBT lr range) or the reward scales; Tune restores this member from "
                "its last checkpoint up to run.max_failures times"
            )
        return result

    def save_checkpoint(self, checkpoint_dir: str) -> None:
        """RLlib's checkpoint, then its manifest (`mapush_rllib.checkpoints`): the mark of a complete one."""
        super().save_checkpoint(checkpoint_dir)
        write_manifest(checkpoint_dir, last_result(self))

    def training_step(self) -> None:
        self.sync_env_state()  # runners rebuilt since the last step get their state back before sampling
        result = super().training_step()
        self.sync_env_state()  # the newest states, for a runner that dies before the next step
        return result

    def sync_env_state(self) -> dict[int, RunnerStates]:
        """Collect every runner's task-schedule state; give rebuilt runners their last one back first.

        Returns the states of all runners seen so far (a runner that is down keeps its last state).
        """
        known = set(self.env_states)
        replies = self.env_runner_group.foreach_env_runner(
            lambda env_runner: report_env_state(env_runner, known), local_env_runner=True
        )
        rebuilt = sorted(index for index, states in filter(None, replies) if states is None)
        if rebuilt:
            saved = {index: self.env_states[index] for index in rebuilt}
            self.env_runner_group.foreach_env_runner(
                lambda env_runner: load_env_state(env_runner, saved), local_env_runner=True
            )
            self.env_state_restores += len(rebuilt)
            logger.warning(
                "env runner(s) %s were rebuilt; gave them back their task-schedule (curriculum) state", rebuilt
            )
        self.env_states.update((index, states) for index, states in filter(None, replies) if states is not None)
        return dict(self.env_states)

    def get_state(
        self,
        components: str | Collection[str] | None = None,
        *,
        not_components: str | Collection[str] | None = None,
        **kwargs: Any,
    ) -> dict:
        state = super().get_state(components, not_components=not_components, **kwargs)
        if wants_component(self, ENV_STATE_KEY, components, not_components):
            state[ENV_STATE_KEY] = self.sync_env_state()
        if wants_component(self, EVALUATION_KEY, components, not_components):
            state[EVALUATION_KEY] = dict(self.last_evaluation)
        return state

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if EVALUATION_KEY in state:  # the latest evaluation the restored checkpoint reported
            self.last_evaluation = dict(state[EVALUATION_KEY])
        if self.evaluation_process is not None:
            self.evaluation_process.forget()  # it was judging the weights this member had before
        if state.get(ENV_STATE_KEY):
            states = state[ENV_STATE_KEY]
            self.env_runner_group.foreach_env_runner(
                lambda env_runner: load_env_state(env_runner, states), local_env_runner=True
            )
            self.env_states = dict(states)
            self.restored_env_state_digest = env_state_digest(states)
        for call in self.learner_group.foreach_learner(reapply_scheduled_learning_rates):
            call.get()
        verify_live_settings(self)

