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

Asynchronous (`evaluation.asynchronous`, for members sharing a GPU): the evaluation due at iteration D runs on a
copy of the policies of iteration D - `lead_iterations` in a process beside the member
(`mapush_rllib.evaluation_process`) while the member trains on; D collects it. Decisions then rank the weights of
D - lead (whose checkpoint is kept: `lead_iterations` must fit the checkpoint grid), and a copying member takes the
donor's weights of D, as Tune hands them over. An evaluation with nothing of the member's own pending (a resume
or a restore between the hand-over and D dropped it; the process died or failed) and the last one run in the
trial's process, on the current weights. A process that ended is replaced at the next hand-over, up to
`MAX_PROCESS_STARTS` processes per member; then the member evaluates in its own process, with one warning.

Results: `eval/<metric>` (`mapush_rllib.result_keys.EVAL_*`), the latest evaluation in every result (NaN before
the first), with `eval/iteration` saying when it was reported, `eval/weights_iteration` whose weights it judged,
`eval/time_s` what it cost the member (asynchronous: handing over and waiting) and `eval/protocol_time_s` how long
the protocol ran. A restored member (resume, PBT exploit) carries the evaluation its checkpoint carried
(`MAPushPPO` checkpoints it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from pydantic import Field

from mapush_rllib.checkpoint_policy import CheckpointPolicy
from mapush_rllib.env import env_sections
from mapush_rllib.evaluation_process import EvaluationProcess, EvaluationProcessError
from mapush_rllib.result_keys import EVAL, nest
from mapush_rllib.sim.schema import StrictModel
from mapush_rllib.task.calculator import TEAM_METRICS, evaluate_team, evaluation_env
from mapush_rllib.task.config import AGENT_IDS

logger = logging.getLogger(__name__)
#: Evaluation processes a member starts at most (`evaluation.asynchronous`): one that keeps ending (say, out of GPU
#: memory while it builds its batch) is not restarted at every hand-over.
MAX_PROCESS_STARTS = 3

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
    asynchronous: bool = Field(
        False, description="evaluate in a process beside the member, on the policies of lead_iterations before the "
        "decision, while it trains (members sharing a GPU under CUDA MPS); false: the member stops and evaluates"
    )
    lead_iterations: int = Field(
        10, gt=0, description="asynchronous: iterations between handing the policies over and the decision that "
        "ranks them; less than the interval, and both multiples of run.checkpoint_every_iterations"
    )

    def resolved(self, simulator_num_envs: int, interval_iterations: int) -> EvaluationConfig:
        """This config with `num_envs` and `interval_iterations` filled in."""
        num_envs = self.num_envs if self.num_envs is not None else min(DEFAULT_NUM_ENVS, simulator_num_envs)
        interval = self.interval_iterations if self.interval_iterations is not None else interval_iterations
        return self.model_copy(update={"num_envs": num_envs, "interval_iterations": interval})


def evaluation_keys(contribution: bool) -> list[str]:
    """Every key an evaluation reports (so the first result, and progress.csv's header, has them all)."""
    keys = [*TEAM_METRICS, "episodes", "iteration", "weights_iteration", "time_s", "protocol_time_s"]
    if contribution:
        keys += [f"contribution/{agent}/{value}" for agent in AGENT_IDS for value in ("success_rate", "task_progress")]
        keys.append("contribution_balance")
    return keys


class TeamEvaluation:
    """`on_train_result` callable (picklable: it travels to every trial) that runs and reports the evaluation.

    Args:
        config: the evaluation settings, `num_envs` resolved (`EvaluationConfig.resolved`).
        is_last: the run's stop condition, `result -> bool`: the iteration that meets it is evaluated too.
    """

    def __init__(self, config: EvaluationConfig, *, is_last: Callable[[dict], bool] | None = None) -> None:
        if config.num_envs is None or config.interval_iterations is None:
            raise ValueError("TeamEvaluation needs EvaluationConfig.resolved(...)")
        self.config = config
        self.is_last = is_last
        self.keys = evaluation_keys(config.contribution)

    def __call__(self, *, algorithm: Any, result: dict, **kwargs: Any) -> None:
        # on_train_result runs once Tune has counted the iteration and filled in its time (Trainable.log_result)
        iteration, interval = result["training_iteration"], self.config.interval_iterations
        last = self.is_last is not None and self.is_last(result)
        if iteration % interval == 0 or last:
            process = getattr(algorithm, "evaluation_process", None)
            weights_iteration = iteration - self.config.lead_iterations
            evaluation = None
            if not last and process is not None and process.pending == weights_iteration:
                try:
                    evaluation = self.collect(process, iteration)
                except EvaluationProcessError as error:  # the decision still gets an evaluation: of the weights now
                    logger.warning("%s; evaluating iteration %d in the member's process instead", error, iteration)
            algorithm.last_evaluation = evaluation or self.evaluate(algorithm, iteration)
        if self.config.asynchronous and not last:
            handing_over = (iteration + self.config.lead_iterations) % interval == 0
            # started at the first result, so that it builds its batch while the member trains
            process = self.process_of(algorithm, restart=handing_over)
            if handing_over and process is not None:
                self.hand_over(process, algorithm, iteration)
        latest = getattr(algorithm, "last_evaluation", None) or {}
        result[EVAL] = nest({key: latest.get(key, math.nan) for key in self.keys})

    def evaluate(self, algorithm: Any, iteration: int) -> dict[str, float]:
        """The calculator protocol with the algorithm's current policies, in this process; flat metrics."""
        started = time.perf_counter()
        env = self.env_of(algorithm)
        agent_modules, modules = self.policies_of(algorithm)
        policy = CheckpointPolicy(modules, agent_modules, env.device)
        metrics, team, _ = evaluate_team(env, policy, contribution=self.config.contribution)
        seconds = time.perf_counter() - started
        return self.reported(metrics, len(team), iteration, iteration, seconds, seconds)

    def process_of(self, algorithm: Any, *, restart: bool) -> EvaluationProcess | None:
        """The member's evaluation process: started at the first call; one that ended is replaced if `restart`,
        up to MAX_PROCESS_STARTS in all (None after that: the member evaluates in its own process)."""
        process = getattr(algorithm, "evaluation_process", None)
        starts = algorithm.evaluation_process_starts
        if process is not None and (process.alive or not restart):
            return process
        if starts >= MAX_PROCESS_STARTS:
            if starts == MAX_PROCESS_STARTS:
                logger.warning("%d evaluation processes of this member ended; it evaluates in its own process from "
                               "now on", starts)
                algorithm.evaluation_process_starts = starts + 1
            return None
        if process is not None:
            logger.warning("the evaluation process of this member ended (exit code %s); starting another",
                           process.exitcode)
            process.close()
        algorithm.evaluation_process = process = EvaluationProcess(
            env_sections(algorithm.config.env_config), num_envs=self.config.num_envs, seed=self.config.seed,
            contribution=self.config.contribution,
        )
        algorithm.evaluation_process_starts = starts + 1
        return process

    def hand_over(self, process: EvaluationProcess, algorithm: Any, iteration: int) -> None:
        """Send a copy of the current policies to the evaluation process (~8 kB through its pipe: the weights go as
        shared memory)."""
        agent_modules, modules = self.policies_of(algorithm)
        try:
            process.submit(modules, agent_modules, iteration)
        except Exception as error:  # e.g. a broken pipe: the next decision evaluates in the member's process
            logger.warning("%s; iteration %d's policies are not handed over", error, iteration)

    def collect(self, process: EvaluationProcess, iteration: int) -> dict[str, float]:
        """The pending evaluation's result, reported at `iteration`; its cost to the member is the hand-over and
        the wait."""
        started = time.perf_counter()
        weights_iteration = process.pending
        metrics, episodes, protocol_s = process.collect(weights_iteration)
        waited = time.perf_counter() - started
        return self.reported(metrics, episodes, iteration, weights_iteration, waited + process.handover_s,
                             protocol_s)

    def reported(self, metrics: dict, episodes: int, iteration: int, weights_iteration: int, cost_s: float,
                 protocol_s: float) -> dict[str, float]:
        metrics = {key: value for key, value in metrics.items() if key in self.keys}
        metrics.update(episodes=float(episodes), iteration=float(iteration), weights_iteration=float(weights_iteration),
                       time_s=cost_s, protocol_time_s=protocol_s)
        return metrics

    @staticmethod
    def policies_of(algorithm: Any) -> tuple[dict[str, str], dict[str, Any]]:
        """(agent -> module id, module id -> the module the env runners act with)."""
        agent_modules = {agent: algorithm.config.policy_mapping_fn(agent, None) for agent in AGENT_IDS}
        modules = {module_id: algorithm.get_module(module_id) for module_id in set(agent_modules.values())}
        return agent_modules, modules

    def env_of(self, algorithm: Any):
        """The member's evaluation batch, built once per process (on its simulator backend and device)."""
        if getattr(algorithm, "evaluation_env", None) is None:
            algorithm.evaluation_env = evaluation_env(
                *env_sections(algorithm.config.env_config),
                num_envs=self.config.num_envs, seed=self.config.seed, contribution=self.config.contribution,
            )
        return algorithm.evaluation_env

