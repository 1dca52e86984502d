"""The evaluation phase a member runs itself: the calculator protocol on its own simulator, in every result.

Rolling training metrics average whichever episodes happened to finish: with short rollouts, or a trial that
restarts its envs, those are the quick successes, and a member at 10 % success can read 100 %. Decisions (PBT
ranking, the report, the progress table) therefore use this evaluation instead: every `interval_iterations`
iterations, and at the last one, the member plays a fixed set of full-task episodes (`evaluation.num_envs` envs,
reset seed `evaluation.seed`, never used for training) with deterministic policies until every env has finished
its first episode, plus the same episodes by each agent alone and by neither (`contribution`). It runs in the
trial's process, on the simulator backend and device the member trains on, as one batch.

The policies are the modules the env runners act with, just synced from the learner, i.e. the weights the
iteration's checkpoint holds: `python -m mapush_rllib.evaluate --policy <that checkpoint> --num-envs N --seed S`
runs the same code (`mapush_rllib.task.calculator.evaluate_team`) and gives the same numbers.

Results: `eval/<metric>` (`mapush_rllib.result_keys.EVAL_*`), the latest evaluation in every result (NaN before
the first), with `eval/iteration` saying when it was taken and `eval/time_s` what it cost. A restored member
(resume, PBT exploit) carries the evaluation of the weights it restored (`MAPushPPO` checkpoints it).
"""

from __future__ import annotations

import math
import time
from typing import Any

from pydantic import Field

from mapush_rllib.checkpoint_policy import CheckpointPolicy
from mapush_rllib.env import ENV_CONFIG_REWARDS
from mapush_rllib.result_keys import ENV_STEPS, EVAL, nest, result_value
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.sim.schema import StrictModel
from mapush_rllib.task.calculator import TEAM_METRICS, evaluate_team, evaluation_env
from mapush_rllib.task.config import AGENT_IDS, RewardConfig, TaskConfig

#: Reset seed of the evaluation episodes: far from the seeds runs train with (run.seed + member index).
DEFAULT_SEED = 1_000_003
DEFAULT_NUM_ENVS = 16


class EvaluationConfig(StrictModel):
    """The evaluation phase (`evaluation:` in the experiment YAML)."""

    num_envs: int | None = Field(
        None, ge=1, description="full-task episodes per evaluation (x4 envs with contribution); at most "
        f"simulator.num_envs; null: {DEFAULT_NUM_ENVS} or simulator.num_envs if that is fewer"
    )
    seed: int = Field(DEFAULT_SEED, description="reset seed of the evaluation episodes; must not be a training seed")
    interval_iterations: int | None = Field(
        None, gt=0, description="iterations between evaluations; null: pbt.perturbation_interval, or 10 without PBT"
    )
    contribution: bool = Field(
        True, description="also play the episodes by each agent alone and by neither: Shapley contributions (4x cost)"
    )

    def resolved(self, simulator_num_envs: int, interval_iterations: int) -> EvaluationConfig:
        """This config with `num_envs` and `interval_iterations` filled in."""
        num_envs = self.num_envs if self.num_envs is not None else min(DEFAULT_NUM_ENVS, simulator_num_envs)
        interval = self.interval_iterations if self.interval_iterations is not None else interval_iterations
        return self.model_copy(update={"num_envs": num_envs, "interval_iterations": interval})


def evaluation_keys(contribution: bool) -> list[str]:
    """Every key an evaluation reports (so the first result, and progress.csv's header, has them all)."""
    keys = [*TEAM_METRICS, "episodes", "iteration", "time_s"]
    if contribution:
        keys += [f"contribution/{agent}/{value}" for agent in AGENT_IDS for value in ("success_rate", "task_progress")]
        keys.append("contribution_balance")
    return keys


class TeamEvaluation:
    """`on_train_result` callable (picklable: it travels to every trial) that runs and reports the evaluation.

    Args:
        config: the evaluation settings, `num_envs` resolved (`EvaluationConfig.resolved`).
        last_iteration, last_env_steps, last_time_s: evaluate every `config.interval_iterations` iterations and
            at the iteration that reaches any of these (the run's stop condition).
    """

    def __init__(self, config: EvaluationConfig, *, last_iteration: int | None = None,
                 last_env_steps: int | None = None, last_time_s: float | None = None) -> None:
        if config.num_envs is None or config.interval_iterations is None:
            raise ValueError("TeamEvaluation needs EvaluationConfig.resolved(...)")
        self.config = config
        self.interval_iterations = config.interval_iterations
        self.last_iteration = last_iteration
        self.last_env_steps = last_env_steps
        self.last_time_s = last_time_s

    def due(self, iteration: int, env_steps: float, time_s: float) -> bool:
        return (
            iteration % self.interval_iterations == 0
            or (self.last_iteration is not None and iteration >= self.last_iteration)
            or (self.last_env_steps is not None and env_steps >= self.last_env_steps)
            or (self.last_time_s is not None and time_s >= self.last_time_s)
        )

    def __call__(self, *, algorithm: Any, result: dict, **kwargs: Any) -> None:
        iteration = algorithm.iteration  # on_train_result runs once the iteration is counted (Trainable.log_result)
        if self.due(iteration, result_value(result, ENV_STEPS, 0), result.get("time_total_s", 0.0)):
            algorithm.last_evaluation = self.evaluate(algorithm, iteration)
        keys = evaluation_keys(self.config.contribution)
        latest = getattr(algorithm, "last_evaluation", None) or {}
        result[EVAL] = nest({key: latest.get(key, math.nan) for key in keys})

    def evaluate(self, algorithm: Any, iteration: int) -> dict[str, float]:
        """The calculator protocol with the algorithm's current policies; flat metrics."""
        started = time.perf_counter()
        env = self.env_of(algorithm)
        agent_modules = {agent: algorithm.config.policy_mapping_fn(agent, None) for agent in AGENT_IDS}
        modules = {module_id: algorithm.get_module(module_id) for module_id in set(agent_modules.values())}
        policy = CheckpointPolicy(modules, agent_modules, env.device)
        metrics, team, _ = evaluate_team(env, policy, contribution=self.config.contribution)
        metrics = {key: value for key, value in metrics.items() if key in evaluation_keys(self.config.contribution)}
        metrics.update(episodes=float(len(team)), iteration=float(iteration),
                       time_s=time.perf_counter() - started)
        return metrics

    def env_of(self, algorithm: Any):
        """The member's evaluation batch, built once per process (on its simulator backend and device)."""
        if getattr(algorithm, "evaluation_env", None) is None:
            env_config = algorithm.config.env_config
            algorithm.evaluation_env = evaluation_env(
                SimConfig.model_validate(env_config["sim"], strict=False),
                TaskConfig.model_validate(env_config["task"], strict=False),
                RewardConfig.model_validate(env_config[ENV_CONFIG_REWARDS], strict=False),
                num_envs=self.config.num_envs, seed=self.config.seed, contribution=self.config.contribution,
            )
        return algorithm.evaluation_env

