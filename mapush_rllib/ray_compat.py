"""Every use of a private Ray (RLlib / Tune) attribute, in one place, written against Ray 2.60.

Ray renames or removes private attributes between minor releases without notice. The rest of the project uses
only Ray's public API plus the names below; when Ray is upgraded, this module is the one to re-read against the
new sources. Importing it on another Ray version fails at once with a message naming both versions, instead of
a trial misbehaving later (`check_ray_version`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import weakref
from pathlib import Path
from typing import Any

import ray
import torch
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.utils.metrics import DIFF_NUM_GRAD_UPDATES_VS_SAMPLER_POLICY, WEIGHTS_SEQ_NO
from ray.rllib.utils.schedules.scheduler import Scheduler
from ray.tune.experiment.trial import Trial
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.search.basic_variant import BasicVariantGenerator

#: The Ray minor version whose private attributes this module uses (pyproject.toml pins the same).
RAY_VERSION = "2.60"


#: Ray 2.60 notices that tell a user of this project nothing to act on: (logger, start of the message).
RAY_NOTICES = (
    ("ray.rllib.algorithms.algorithm_config", "You are running"),  # "... on the new API stack!" per actor
    ("ray._common.deprecation", "DeprecationWarning: `RLModule(config="),  # raised by RLlib's own RLModule
    ("ray.tune.utils.util", "Install gputil"),
    ("ray.train._internal.storage", "Checkpoint successfully created at"),  # every checkpoint of every member
    ("ray.tune.trainable.trainable", "Restored on"),  # said by the member's own line (population.curriculum_hooks)
    ("ray.tune.tune", "Experiment has been interrupted"),  # "Resume with Tuner.restore(...)": population.run says
    # PopulationBasedTrainingWithHooks reserves places in Tune's actor cache, on purpose (its docstring says why)
    ("ray.tune.execution.tune_controller", "You are trying to access _actor_cache interface"),
)
_NOTICES_QUIETED: set[int] = set()  # the processes that installed the filters


def quiet_ray_notices() -> None:
    """Drop `RAY_NOTICES` from this process's logs (once per process; everything else Ray logs stays)."""
    if os.getpid() in _NOTICES_QUIETED:
        return
    _NOTICES_QUIETED.add(os.getpid())
    for name, start in RAY_NOTICES:
        logging.getLogger(name).addFilter(lambda record, start=start: not record.getMessage().startswith(start))


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


def masked_mean(mask: torch.Tensor | None):
    """x -> the mean of x over the rows where `mask` holds (all rows without a mask). RLlib takes masked means as
    `sum(x[mask]) / n`: indexing with a boolean tensor makes the host wait for the GPU (a `nonzero`); the masked
    rows are zeroed here instead, which gives the same mean to float rounding."""
    if mask is None:
        return torch.mean
    num_valid = mask.sum()
    return lambda x: torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum() / num_valid


#: Learner metric, per module: gradient entries that were not finite (zeroed), since the learner's process started.
GRADIENTS_NON_FINITE = "gradients_non_finite"


class PPOTorchLearnerWithBatchHook(PPOTorchLearner):
    """RLlib's PPO torch learner with a public hook where the training batch is built from the sampled data, and
    an optimizer step without host synchronisation.

    RLlib's `TorchLearner.apply_gradients` (2.60) asks the host, per parameter and minibatch, whether its gradient
    is finite (twice), then zeroes NaN/inf entries (`torch.nan_to_num`) where it is not: on a GPU each question
    waits for the GPU. Here `nan_to_num` runs on every gradient (a no-op on finite ones), the zeroed entries are
    counted on the device (`GRADIENTS_NON_FINITE`, a running total logged as one value, since RLlib's sum and max
    reductions of tensors index with a mask), and RLlib's other modes (`torch_skip_nan_gradients`, gradient
    scalers, torch lr schedulers) keep its own path.
    """

    def batch_from_samples(self, samples: list[Any]) -> Any | None:
        """The training batch (a MultiAgentBatch) for these samples, or None to build it RLlib's way."""
        return None

    def _make_batch_if_necessary(self, training_data: Any) -> Any:
        samples = training_data.episodes
        batch = self.batch_from_samples(list(samples)) if samples else None
        return batch if batch is not None else super()._make_batch_if_necessary(training_data)

    def _compute_off_policyness(self, batch: dict) -> None:  # RLlib's metric, its masked mean without a host wait
        self.metrics.log_dict({
            (module_id, DIFF_NUM_GRAD_UPDATES_VS_SAMPLER_POLICY): masked_mean(columns.get(Columns.LOSS_MASK))(
                (self._weights_seq_no - columns[WEIGHTS_SEQ_NO]).float()
            )
            for module_id, columns in batch.items() if WEIGHTS_SEQ_NO in columns
        }, window=1)

    def apply_gradients(self, gradients_dict: dict) -> None:
        if self.config.torch_skip_nan_gradients or self._grad_scalers or self._lr_scheduler_classes is not None:
            return super().apply_gradients(gradients_dict)
        totals = self.__dict__.setdefault("_non_finite_gradients", {})  # module id -> running count (a tensor)
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                optimizer = self.get_optimizer(module_id, optimizer_name)
                for group in optimizer.param_groups:
                    for param in group["params"]:
                        grad = gradients_dict.get(self.get_param_ref(param))
                        if grad is not None:
                            count = (~torch.isfinite(grad)).sum()
                            totals[module_id] = totals[module_id] + count if module_id in totals else count
                            param.grad = torch.nan_to_num(grad)
                optimizer.step()
            if module_id in totals:
                self.metrics.log_value((module_id, GRADIENTS_NON_FINITE), totals[module_id], window=1)


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


class PausedToContinue:
    """Trial ids of members paused only to continue shortly: one that copies a donor, or one that waits for the
    others at a synchronous decision (shared by the scheduler and the search)."""

    def __init__(self) -> None:
        self.trial_ids: set[str] = set()


class SearchKeepingPausedProcesses(BasicVariantGenerator):
    """Tune's grid of members, reading "unfinished" while a member paused to continue waits.

    Tune (2.60) keeps a paused trial's process for reuse (`reuse_actors`) only while the search may still add
    trials or some trial waits for resources (`TuneController._maybe_cache_trial_actor`); when every member runs,
    neither holds, and a paused member would get a new process instead of continuing in its own.
    """

    def __init__(self, paused: PausedToContinue) -> None:
        super().__init__()
        self.paused = paused

    def is_finished(self) -> bool:
        return super().is_finished() and not self.paused.trial_ids

    def get_state(self) -> Any:
        state = super().get_state()
        return {k: v for k, v in state.items() if k != "paused"} if state else state  # the live set stays


class PopulationBasedTrainingWithHooks(PopulationBasedTraining):
    """Tune's PBT with public hooks for the three decisions a project changes, and paused members that keep
    their processes.

    - `split_population(scores, quantile_fraction)`: which members are replaced and which are copied;
    - `before_explore(trial)`: a member is about to copy a donor's config and explore it;
    - `keep_member_identity(new_config, own_config)`: a member's config after it copied a donor's and explored;
    - `before_exploit_logged(trial)`: runs before Tune appends an exploit to its logs;
    - `on_exploit(trial, donor, new_config, scores)`: a member is about to continue as an explored copy.

    Tune caches the process of a paused trial only while its actor cache expects one more of that size
    (`_ObjectCache.increase_max`; it keeps one spare at most otherwise): synchronous decisions pause every member,
    so each paused member reserves a place until its next result.
    """

    def split_population(self, scores: dict[Any, float], quantile_fraction: float) -> tuple[list, list]:
        """(members to replace, members to copy from) given the last score of every unfinished member."""
        raise NotImplementedError

    def before_explore(self, trial: Any) -> None:
        """Called before Tune explores the donor's config for `trial` (its `custom_explore_fn` sees only that)."""

    def keep_member_identity(self, new_config: dict, own_config: dict) -> None:
        """Change `new_config` (the donor's, explored) in place before the member continues with it."""

    def before_exploit_logged(self, trial: Any) -> None:
        """Called before Tune writes an exploit of `trial` to `pbt_global.txt` and `pbt_policy_<trial>.txt`."""

    def on_exploit(self, trial: Any, donor: Any, new_config: dict, scores: tuple[float, float]) -> None:
        """`trial` continues from `donor`'s checkpoint with `new_config`; scores: (trial's, donor's) last."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paused_to_continue = PausedToContinue()  # pass to SearchKeepingPausedProcesses
        self._cache_places: dict[str, Any] = {}  # trial id -> the actor cache a place was reserved in

    def __setstate__(self, state: dict) -> None:  # a resumed run unpickles the scheduler: no __init__
        self.__dict__.update(state)
        self._cache_places = {}  # places belong to the controller of the run that reserved them
        self._back_on_the_decision_grid()

    def _back_on_the_decision_grid(self) -> None:
        """A resumed run's scheduler state may be older than the members' checkpoints, caught mid-decision, or
        saved off the grid by an older version: each member's last decision goes back to the grid point at or
        before it (so the next grid iteration can decide), and the next synchronous decision comes after every
        member's recorded iteration (so a first member there cannot decide alone on the others' old scores)."""
        for state in self._trial_state.values():
            last = state.last_perturbation_time
            if last >= self._first_decision and not self.is_decision_iteration(last):
                state.last_perturbation_time = self.next_decision_after(last) - self._perturbation_interval
        if self._synch and self._trial_state:
            newest = max(state.last_train_time for state in self._trial_state.values())
            if self._next_perturbation_sync <= newest or not self.is_decision_iteration(self._next_perturbation_sync):
                self._next_perturbation_sync = self.next_decision_after(max(newest, self._next_perturbation_sync - 1))

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_cache_places"}

    def _hold_process(self, tune_controller: Any, trial: Any) -> None:
        """`trial` pauses to continue: the search reads unfinished and the actor cache has a place for it."""
        self.paused_to_continue.trial_ids.add(trial.trial_id)
        if trial.trial_id not in self._cache_places:
            tune_controller._actor_cache.increase_max(trial.placement_group_factory)
            self._cache_places[trial.trial_id] = tune_controller._actor_cache

    def _release_process(self, trial: Any) -> None:
        self.paused_to_continue.trial_ids.discard(trial.trial_id)
        cache = self._cache_places.pop(trial.trial_id, None)
        if cache is not None:
            cache.decrease_max(trial.placement_group_factory)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._release_process(trial)  # it continues (or pauses again below)
        if not self.is_decision_iteration(result.get(self._time_attr)):
            # Tune decides wherever `perturbation_interval` has passed since a member's last decision. A resumed
            # run's scheduler state can be older than the members' checkpoints: members restored at 170 with
            # their last decision at 120 decided at 171, then at 201, 231, ... (round 19), off the iterations
            # where they evaluate themselves. Decisions stay on the grid instead.
            return self.CONTINUE
        next_decision = self._next_perturbation_sync
        decision = super().on_trial_result(tune_controller, trial, result)
        if self._synch and decision == self.PAUSE:  # waits for the others at a synchronous decision
            self._hold_process(tune_controller, trial)
        if self._synch and self._next_perturbation_sync != next_decision:  # all decided: when is the next one?
            # Tune sets it to max(this one + interval, the newest member's iteration): members that arrived past
            # it (a resumed run's fresh scheduler meets members restored at iteration 5 with a decision due at 2)
            # would then all be paused at the next decision's iteration, where none may run again.
            newest = max(state.last_train_time for state in self._trial_state.values())
            if self._next_perturbation_sync <= newest:
                self._next_perturbation_sync = self.next_decision_after(newest)
        return decision

    @property
    def _first_decision(self) -> float:
        """Where Tune's decision grid starts (its first synchronous decision): max(interval, burn-in)."""
        return max(self._perturbation_interval, self._burn_in_period)

    def is_decision_iteration(self, iteration: Any) -> bool:
        """Whether a result at `iteration` may be a decision: the grid Tune starts from, max(interval, burn-in),
        then every interval. Members evaluate themselves on those iterations (`evaluation.interval_iterations`
        defaults to the interval), so a decision off the grid ranks on scores up to an interval old and copies
        a checkpoint that nobody evaluated."""
        if not isinstance(iteration, (int, float)):
            return True  # no time in the result: Tune's own checks report it
        first = self._first_decision
        return iteration >= first and (iteration - first) % self._perturbation_interval == 0

    def next_decision_after(self, iteration: int) -> int:
        """The first iteration on the decision grid (`is_decision_iteration`) after `iteration`."""
        first = self._first_decision
        if iteration < first:
            return first
        return first + ((iteration - first) // self._perturbation_interval + 1) * self._perturbation_interval

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        trial = super().choose_trial_to_run(tune_controller)
        if trial is None and self._synch:
            trials = tune_controller.get_trials()
            waiting = [t for t in trials if t.status == Trial.PAUSED]
            if waiting and not any(t.status in (Trial.RUNNING, Trial.PENDING) for t in trials):
                # Members at different iterations (restored by --resume, or given a donor's count by an exploit)
                # can all wait at a decision that no running member will complete: let them all run on to the next.
                newest = max(self._trial_state[t].last_train_time for t in waiting)
                self._next_perturbation_sync = self.next_decision_after(newest)
                trial = super().choose_trial_to_run(tune_controller)
        return trial

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._release_process(trial)
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._release_process(trial)
        super().on_trial_error(tune_controller, trial)

    def _quantiles(self) -> tuple[list, list]:
        scores = {
            trial: state.last_score
            for trial, state in self._trial_state.items()
            if state.last_score is not None and not math.isnan(state.last_score) and not trial.is_finished()
        }
        return self.split_population(scores, self._quantile_fraction)

    def _get_new_config(self, trial: Any, trial_to_clone: Any) -> tuple[dict, dict]:
        self.before_explore(trial)
        new_config, operations = super()._get_new_config(trial, trial_to_clone)
        self.keep_member_identity(new_config, trial.config)
        scores = (self._trial_state[trial].last_score, self._trial_state[trial_to_clone].last_score)
        self.on_exploit(trial, trial_to_clone, new_config, scores)
        return new_config, operations

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        self._hold_process(tune_controller, trial)  # before Tune pauses it to restart from the donor's checkpoint
        super()._exploit(tune_controller, trial, trial_to_clone)

    def _log_config_on_step(self, trial_state, new_state, trial, trial_to_clone, new_config):  # noqa: ANN001, ANN202
        self.before_exploit_logged(trial)
        super()._log_config_on_step(trial_state, new_state, trial, trial_to_clone, new_config)


def last_result(trainable: Any) -> dict:
    """The result of a Tune trainable's latest iteration (what Tune registers with a checkpoint it takes)."""
    return dict(trainable._last_result or {})


def newest_experiment_state(experiment_dir: Path) -> Path | None:
    """The experiment state file `Tuner.restore` reads (Tune names them by session date; the newest sorts last)."""
    from ray.tune.execution.tune_controller import TuneController

    found = sorted(experiment_dir.glob(TuneController.CKPT_FILE_TMPL.format("*")))
    return found[-1] if found else None


def store_only_the_newest_checkpoint_result() -> None:
    """Tune keeps a record of every checkpoint a trial saved, with its whole result (~80 kB each here), in the
    experiment state it rewrites every few seconds; `population.checkpoint_retention` deletes checkpoints itself,
    so without this the state grows by a result per checkpoint. Tune's switch (2.60) keeps the newest's result."""
    from ray.train.constants import TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE

    os.environ.setdefault(TUNE_ONLY_STORE_CHECKPOINT_SCORE_ATTRIBUTE, "1")


def repair_experiment_state(experiment_dir: Path) -> str | None:
    """Put back a cut experiment state file from the driver's staging copy; returns what was done, or None.

    Tune writes the state into the driver's staging folder (`/tmp/ray/session_*/artifacts/<date>/<run>/
    driver_artifacts/`), then copies it into the run folder without an atomic rename: a kill during that copy
    leaves the run folder's file cut. The staging file of the same name, left by the killed driver, is whole.
    """
    from ray._common.utils import get_default_ray_temp_dir
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    path = newest_experiment_state(experiment_dir)
    if path is None:
        return None
    try:
        _loads_with_cloudpickle(path.read_text())
        return None
    except ValueError:
        pass
    pattern = f"session_*/artifacts/*/{experiment_dir.name}/driver_artifacts/{path.name}"
    staged = sorted(Path(get_default_ray_temp_dir()).glob(pattern), key=lambda p: p.stat().st_mtime)
    for candidate in reversed(staged):
        try:
            _loads_with_cloudpickle(candidate.read_text())
        except ValueError:
            continue
        copy = path.with_name(path.name + ".tmp")
        copy.write_text(candidate.read_text())
        os.replace(copy, path)
        return f"{path.name} was cut (the kill came while Tune copied it); restored from {candidate}"
    return None


def failed_trial_paths(results: Any) -> set[str]:
    """Folders of the trials of a Tune ResultGrid that ended in ERROR. (`Result.error` also holds the error of a
    failure the trial was since restored from, so it cannot tell a failed member from an interrupted one.)"""
    return {trial.path for trial in results._experiment_analysis.trials if trial.status == "ERROR"}


def recorded_trial_folders(experiment_dir: Path) -> list[str]:
    """The trial folder names of the trials Tune's experiment state holds."""
    from ray.tune.experiment.trial import Trial
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    path = newest_experiment_state(experiment_dir)
    if path is None:
        raise FileNotFoundError(f"{experiment_dir}: no Tune experiment state (the run ended before Tune saved one)")
    try:
        state = _loads_with_cloudpickle(path.read_text())
    except ValueError as error:  # Tune's upload of it is not atomic: a kill during that copy cuts it
        raise FileNotFoundError(f"{path}: Tune's experiment state is damaged ({error})") from None
    trials = (Trial.from_json_state(trial_json, stub=True) for trial_json, _ in state["trial_data"])
    return [trial.storage.trial_dir_name for trial in trials]


def record_trial_checkpoints(experiment_dir: Path, checkpoints: dict[str, list[tuple[Path, dict]]],
                             last_index: dict[str, int], finished: Any) -> None:
    """Make Tune's experiment state list exactly `checkpoints[trial folder]` (oldest first, with their results)
    for each trial named, continue numbering after `last_index[trial folder]`, and write it back atomically.
    A trial whose newest checkpoint's result is `finished(result)` is marked finished, one that is not is resumed.

    Tune saves its experiment state now and then (every 10 s or more), so a killed run's state can miss the
    newest checkpoints (resume would silently repeat iterations) or list one whose copy was cut short.
    """
    from ray.train._internal.checkpoint_manager import _CheckpointManager
    from ray.train._internal.session import _TrainingResult
    from ray.tune import Checkpoint
    from ray.tune.experiment.trial import Trial
    from ray.tune.utils.serialization import TuneFunctionEncoder, _loads_with_cloudpickle

    path = newest_experiment_state(experiment_dir)
    state = _loads_with_cloudpickle(path.read_text())
    trial_data = []
    for trial_json, run_metadata in state["trial_data"]:
        trial = Trial.from_json_state(trial_json, stub=True)
        trial.restore_run_metadata(run_metadata)
        name = trial.storage.trial_dir_name
        if name not in checkpoints:
            trial_data.append([trial_json, run_metadata])  # as Tune wrote it
            continue
        manager = _CheckpointManager(trial.run_metadata.checkpoint_manager.checkpoint_config)
        for directory, result in checkpoints[name]:
            manager.register_checkpoint(_TrainingResult(Checkpoint(str(directory)), result))
        trial.run_metadata.checkpoint_manager = manager
        trial.run_metadata.last_result = checkpoints[name][-1][1] if checkpoints[name] else {}
        trial.storage.current_checkpoint_index = last_index[name]
        done = bool(checkpoints[name]) and finished(checkpoints[name][-1][1])
        if trial.status != Trial.ERROR:  # (killed after its final checkpoint, or with that checkpoint cut)
            trial.set_status(Trial.TERMINATED if done else Trial.PENDING)
        trial.stub = False  # a stub is how this function read it, not what the trial is
        trial.invalidate_json_state()
        trial_data.append(list(trial.get_json_state()))
    state["trial_data"] = trial_data
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(json.dumps(state, cls=TuneFunctionEncoder))
    os.replace(staged, path)
