"""The curriculum inside an RLlib/Tune run: one scheduler per simulator, metrics every iteration, resume log.

- `curriculum_schedule` is the `task_schedule_factory` of the env config: every `MAPushVecEnv` an env
  runner builds gets its own `CurriculumScheduler` over the runner's global env ids. The env config crosses
  process boundaries, so the curriculum config travels in it as plain data (`env_config["curriculum"]`)
  and the factory is a module-level function (pickled by name).
- `CurriculumCallbacks.on_train_result` merges the `CurriculumStats` of all env runners into the result
  under `curriculum/` (Tune writes it to result.json, progress.csv and TensorBoard). Every key is there from
  the first result (NaN while undefined), so progress.csv has a column for each.
- State: `MAPushPPO` (`mapush_rllib/algorithm.py`) saves every scheduler's `state_dict()` with each
  checkpoint, loads it back on restore (Tune resume, PBT exploit, `restore_from_path`), and gives a
  recreated env runner its last state. `on_checkpoint_loaded` logs where the curriculum resumed and keeps
  it in `curriculum/resumed/...` for the rest of the run.

Use `ppo_config_options(experiment.curriculum)` as keyword arguments of `build_ppo_config`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback

from curriculum import CurriculumConfig, CurriculumScheduler, CurriculumStats
from curriculum.metrics import PREFIX
from mapush_rllib.env import env_sections, runner_vec_envs
from population.result_keys import CURRICULUM, nest

logger = logging.getLogger(__name__)

ENV_CONFIG_KEY = "curriculum"
#: Metrics kept, after a checkpoint is loaded, as `curriculum/resumed/<key>` (NaN before any load).
RESUMED_KEYS = ("iteration", "level_mean", "level_max", "full_task_success_rate", "promotions", "demotions")


def curriculum_schedule(env_config: dict, num_envs: int, env_id_offset: int) -> CurriculumScheduler:
    """The scheduler of one simulator batch (a `TaskScheduleFactory`, see `mapush_rllib.env`)."""
    sim, task, _ = env_sections(env_config)
    return CurriculumScheduler(
        CurriculumConfig.model_validate(env_config[ENV_CONFIG_KEY], strict=False),
        task,
        sim.physics,
        num_envs=num_envs,
        seed=int(env_config["seed"]),
        env_id_offset=env_id_offset,
        device=sim.device,
    )


def ppo_config_options(curriculum: CurriculumConfig) -> dict[str, Any]:
    """Keyword arguments of `mapush_rllib.training.build_ppo_config` that put the curriculum into a run."""
    return {
        "task_schedule_factory": curriculum_schedule,
        "env_config_extra": {ENV_CONFIG_KEY: curriculum.model_dump(mode="json")},
        "callbacks": [CurriculumCallbacks],
    }


def runner_stats(env_runner: Any) -> list[CurriculumStats]:
    """Stats of every curriculum scheduler of one env runner (none for the env-less local runner)."""
    schedules = [vec_env.task_schedule for vec_env in runner_vec_envs(env_runner)]
    return [schedule.stats() for schedule in schedules if isinstance(schedule, CurriculumScheduler)]


def collect_stats(algorithm: Any) -> CurriculumStats | None:
    """The merged stats of all healthy env runners; None when no runner has a curriculum scheduler."""
    per_runner = algorithm.env_runner_group.foreach_env_runner(runner_stats, local_env_runner=True)
    parts = [stats for runner in per_runner for stats in runner]
    return CurriculumStats.merge(parts) if parts else None


def result_metrics(stats: CurriculumStats) -> dict[str, float]:
    """`stats.metrics()` with the keys it leaves out while undefined present as NaN, keyed without the prefix."""
    metrics = {key.removeprefix(PREFIX): value for key, value in stats.metrics().items()}
    always = ["full_task_success_rate"]
    if stats.enabled:
        always += ["level_mean", "level_max"]
        always += [f"level_success_rate/{k}" for k in range(len(stats.envs_per_level))]
    return {**{key: math.nan for key in always}, **metrics}


class CurriculumCallbacks(RLlibCallback):
    """Curriculum metrics in every result; a log line and `curriculum/resumed/...` after a checkpoint load."""

    def __init__(self) -> None:
        super().__init__()
        self.resumed = dict.fromkeys(RESUMED_KEYS, math.nan)

    def on_checkpoint_loaded(self, *, algorithm: Any, **kwargs: Any) -> None:
        # Fired by Tune's restore (resume, PBT exploit, trial restart) after MAPushPPO.set_state has given
        # every runner its saved scheduler state.
        stats = collect_stats(algorithm)
        if stats is None:
            return
        metrics = result_metrics(stats)
        self.resumed = {key: float(metrics.get(key, math.nan)) for key in RESUMED_KEYS}
        self.resumed["iteration"] = float(algorithm.iteration)
        # WARNING: Ray's worker processes show only warnings and above from loggers outside `ray`.
        # (whose checkpoint: the [pbt] line of an exploit names the donor; a resume lists each member's)
        logger.warning("continues from a checkpoint of iteration %d; %s", algorithm.iteration, stats.summary())

    def on_train_result(self, *, algorithm: Any, result: dict, **kwargs: Any) -> None:
        stats = collect_stats(algorithm)
        if stats is None:
            return
        metrics = nest(result_metrics(stats))
        metrics["resumed"] = dict(self.resumed)
        metrics["env_runner_restores"] = float(getattr(algorithm, "env_state_restores", 0))
        result[CURRICULUM] = metrics
