"""Every use of a private Ray (RLlib / Tune) attribute, in one place, written against Ray 2.60.

Ray renames or removes private attributes between minor releases without notice. The rest of the project uses
only Ray's public API plus the names below; when Ray is upgraded, this module is the one to re-read against the
new sources. Importing it on another Ray version fails at once with a message naming both versions, instead of
a trial misbehaving later (`check_ray_version`).
"""

from __future__ import annotations

import csv
import math
import weakref
from typing import Any

import ray
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.utils.schedules.scheduler import Scheduler
from ray.tune.schedulers import PopulationBasedTraining

#: The Ray minor version whose private attributes this module uses (pyproject.toml pins the same).
RAY_VERSION = "2.60"


def check_ray_version(version: str = ray.__version__) -> None:
    """Raise ImportError unless `version` is a release of RAY_VERSION."""
    if version.split(".")[:2] != RAY_VERSION.split("."):
        raise ImportError(
            f"mapush-pbt's Ray compatibility layer (mapush_rllib/ray_compat.py) is written for Ray {RAY_VERSION}.x, "
            f"but Ray {version} is installed; install the pinned version: pip install 'ray[default,rllib,tune]=="
            f"{RAY_VERSION}.*'"
        )


check_ray_version()

# ------------------------------------------------------------------------------------------------ learners


def learner_device(learner: Any) -> torch.device:
    """The device a Learner keeps its modules and schedules on."""
    return learner._device


def set_constant_learning_rate(learner: Any, module_id: str, value: float) -> None:
    """Make `value` the learning rate of every optimizer of `module_id`, now and in later updates.

    A Learner re-applies its per-optimizer schedule before each update, so the schedule is replaced too.
    """
    for _, optimizer in learner.get_optimizers_for_module(module_id):
        learner._optimizer_lr_schedules[optimizer] = Scheduler(value, framework="torch", device=learner._device)
        learner._set_optimizer_lr(optimizer, value)


def set_constant_entropy_coeff(learner: Any, module_id: str, value: float) -> None:
    """Make `value` the entropy coefficient of `module_id` from the next update on."""
    learner.entropy_coeff_schedulers_per_module[module_id] = Scheduler(
        value, framework="torch", device=learner._device
    )


def reapply_scheduled_learning_rates(learner: Any) -> None:
    """Set every optimizer's learning rate to its schedule's current value.

    Restoring optimizer state brings back the learning rate the checkpoint was written with; the schedule holds
    this run's (e.g. a PBT member's freshly mutated one).
    """
    for optimizer, schedule in learner._optimizer_lr_schedules.items():
        learner._set_optimizer_lr(optimizer, float(schedule.get_current_value()))


class PPOTorchLearnerWithBatchHook(PPOTorchLearner):
    """RLlib's PPO torch learner with a public hook where the training batch is built from the sampled data."""

    def batch_from_samples(self, samples: list[Any]) -> Any | None:
        """The training batch (a MultiAgentBatch) for these samples, or None to build it RLlib's way."""
        return None

    def _make_batch_if_necessary(self, training_data: Any) -> Any:
        samples = training_data.episodes
        batch = self.batch_from_samples(list(samples)) if samples else None
        return batch if batch is not None else super()._make_batch_if_necessary(training_data)


# ---------------------------------------------------------------------------------------------- env runners


class MultiAgentEnvRunnerBase(MultiAgentEnvRunner):
    """RLlib's multi-agent env runner, with public names for the private state a subclass needs."""

    @property
    def module_device(self) -> torch.device:
        """Where the runner's modules live and act."""
        return self._device

    @module_device.setter
    def module_device(self, device: torch.device) -> None:
        self._device = device

    @property
    def needs_initial_reset(self) -> bool:
        """True when the next `sample()` must reset every env first (set by `make_env`)."""
        return self._needs_initial_reset

    @needs_initial_reset.setter
    def needs_initial_reset(self, value: bool) -> None:
        self._needs_initial_reset = value

    @property
    def callback_objects(self) -> list[Any]:
        """The RLlibCallback objects `make_callback` calls."""
        return self._callbacks

    @property
    def weights_seq_no(self) -> int:
        """Sequence number of the weights the runner's modules hold."""
        return self._weights_seq_no


def request_initial_reset(env_runner: Any) -> None:
    """Make a stock runner reset all its sub-envs at its next `sample()`, as it does after `make_env`."""
    env_runner._needs_initial_reset = True


def has_custom_connectors(config: Any) -> bool:
    """True when the AlgorithmConfig sets its own env-to-module or module-to-env connectors."""
    return config._env_to_module_connector is not None or config._module_to_env_connector is not None


def module_forward(module: Any, batch: dict, explore: bool) -> dict:
    """The forward pass behind `forward_exploration` / `forward_inference`, without their per-call
    train/eval toggling (the runner keeps its modules in eval mode)."""
    return module._forward_exploration(batch) if explore else module._forward_inference(batch)


def finish_episode_chunk(episode: Any, lookback: int, now: float) -> None:
    """Set what `MultiAgentEpisode`'s constructor cannot: its lookback length and step timestamps."""
    episode._len_lookback_buffers = lookback
    episode._start_time = episode._last_step_time = now


#: id(EnvContext) -> sub-envs made from it so far; an entry leaves with its context (weakref.finalize).
_SUB_ENVS_MADE: dict[int, int] = {}


def sub_env_index(env_context: Any, num_envs: int) -> int:
    """Index of a new sub-env among the `num_envs` that RLlib's stock runner makes from one EnvContext.

    `MultiAgentEnvRunner.make_env` builds all its sub-envs from one shared EnvContext whose `vector_index` stays 0,
    so they are numbered here in creation order (modulo the count, should one context serve several
    `make_env`s). A plain dict (a standalone env) is index 0.
    """
    if not hasattr(env_context, "worker_index"):
        return 0
    key = id(env_context)
    if key not in _SUB_ENVS_MADE:
        _SUB_ENVS_MADE[key] = 0
        weakref.finalize(env_context, _SUB_ENVS_MADE.pop, key, None)
    index = _SUB_ENVS_MADE[key]
    _SUB_ENVS_MADE[key] = index + 1
    return index % num_envs


# ---------------------------------------------------------------------------------------------- algorithms


def wants_component(algorithm: Any, name: str, components: Any, not_components: Any) -> bool:
    """Whether `get_state(components, not_components=...)` asks for the state component `name`."""
    return algorithm._check_component(name, components, not_components)


# ------------------------------------------------------------------------------------------------------ Tune


class PopulationBasedTrainingWithHooks(PopulationBasedTraining):
    """Tune's PBT with public hooks for the three decisions a project changes.

    - `split_population(scores, quantile_fraction)`: which members are replaced and which are copied;
    - `keep_member_identity(new_config, own_config)`: a member's config after it copied a donor's and explored;
    - `before_exploit_logged(trial)`: runs before Tune appends an exploit to its logs.
    """

    def split_population(self, scores: dict[Any, float], quantile_fraction: float) -> tuple[list, list]:
        """(members to replace, members to copy from) given the last score of every unfinished member."""
        raise NotImplementedError

    def keep_member_identity(self, new_config: dict, own_config: dict) -> None:
        """Change `new_config` (the donor's, explored) in place before the member continues with it."""

    def before_exploit_logged(self, trial: Any) -> None:
        """Called before Tune writes an exploit of `trial` to `pbt_global.txt` and `pbt_policy_<trial>.txt`."""

    def _quantiles(self) -> tuple[list, list]:
        scores = {
            trial: state.last_score
            for trial, state in self._trial_state.items()
            if state.last_score is not None and not math.isnan(state.last_score) and not trial.is_finished()
        }
        return self.split_population(scores, self._quantile_fraction)

    def _get_new_config(self, trial: Any, trial_to_clone: Any) -> tuple[dict, dict]:
        new_config, operations = super()._get_new_config(trial, trial_to_clone)
        self.keep_member_identity(new_config, trial.config)
        return new_config, operations

    def _log_config_on_step(self, trial_state, new_state, trial, trial_to_clone, new_config):  # noqa: ANN001, ANN202
        self.before_exploit_logged(trial)
        super()._log_config_on_step(trial_state, new_state, trial, trial_to_clone, new_config)


def json_logger_reopen(logger: Any, trial: Any, path: Any) -> None:
    """Let Tune's JsonLoggerCallback append to `path` for `trial` if it holds no open file for it."""
    if trial not in logger._trial_files:
        logger._trial_files[trial] = open(path, "at")  # noqa: SIM115 -- the logger owns and closes it


def csv_logger_continue(logger: Any, trial: Any, read_header: Any) -> None:
    """Make Tune's CSVLoggerCallback continue an existing progress file under that file's own header.

    Tune (2.60) continues a file after `--resume` without a header, in the keys of the first new result.
    `read_header()` returns the existing file's column names.
    """
    if trial not in logger._trial_files:
        logger._setup_trial(trial)
    if logger._trial_csv[trial] is None and logger._trial_continue[trial]:
        logger._trial_csv[trial] = csv.DictWriter(logger._trial_files[trial], read_header())
