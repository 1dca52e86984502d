"""Where the population's numbers live in a training result (keys as '/'-joined paths; see
`mapush_rllib.result_keys`, whose task-metric keys and `result_value` are re-exported here)."""

from __future__ import annotations

from curriculum.metrics import PREFIX as CURRICULUM_PREFIX
from mapush_rllib.result_keys import (
    ENV_STEPS,
    EVAL,
    EVAL_CONTRIBUTION_BALANCE,
    EVAL_EPISODES,
    EVAL_FINISH_TIME,
    EVAL_FREELOADING_INDEX,
    EVAL_SUCCESS_RATE,
    EVAL_TASK_PROGRESS,
    EVAL_TIME,
    FREELOADING_INDEX,
    LIVE_SETTINGS,
    SUCCESS_RATE,
    TASK_PROGRESS,
    WINDOW_EPISODES,
    evaluated_iteration,
    nest,
    ran_evaluation,
    result_value,
)

#: `curriculum/...`: the curriculum's metrics (`population.curriculum_hooks`).
CURRICULUM = CURRICULUM_PREFIX.rstrip("/")
FULL_TASK_SUCCESS = f"{CURRICULUM}/full_task_success_rate"
LEVEL_MEAN = f"{CURRICULUM}/level_mean"
FRONTIER = f"{CURRICULUM}/frontier"
#: `pbt/...`: the member score and what it is made of (`population.score`); SCORE is what PBT ranks by.
PBT = "pbt"
SCORE_NAME = "score"
SCORE = f"{PBT}/{SCORE_NAME}"

__all__ = [
    "CURRICULUM", "ENV_STEPS", "EVAL", "EVAL_CONTRIBUTION_BALANCE", "EVAL_EPISODES", "EVAL_FINISH_TIME",
    "EVAL_FREELOADING_INDEX", "EVAL_SUCCESS_RATE", "EVAL_TASK_PROGRESS", "EVAL_TIME",
    "FREELOADING_INDEX", "FRONTIER", "FULL_TASK_SUCCESS", "LEVEL_MEAN", "LIVE_SETTINGS", "PBT", "SCORE", "SCORE_NAME",
    "SUCCESS_RATE", "TASK_PROGRESS", "WINDOW_EPISODES", "evaluated_iteration", "nest",
    "ran_evaluation", "result_value",
]
