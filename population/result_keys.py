"""Where the population's numbers live in a training result (keys as '/'-joined paths; see
`mapush_rllib.result_keys`, whose task-metric keys and `result_value` are re-exported here)."""

from __future__ import annotations

from curriculum.metrics import PREFIX as CURRICULUM_PREFIX
from mapush_rllib.result_keys import (
    ENV_STEPS,
    FREELOADING_INDEX,
    SUCCESS_RATE,
    TASK_PROGRESS,
    result_value,
)

#: `curriculum/...`: the curriculum's metrics (`population.curriculum_hooks`).
CURRICULUM = CURRICULUM_PREFIX.rstrip("/")
FULL_TASK_SUCCESS = f"{CURRICULUM}/full_task_success_rate"
LEVEL_MEAN = f"{CURRICULUM}/level_mean"
#: `pbt/...`: the member score and what it is made of (`population.score`); SCORE is what PBT ranks by.
PBT = "pbt"
SCORE_NAME = "score"
SCORE = f"{PBT}/{SCORE_NAME}"

__all__ = [
    "CURRICULUM", "ENV_STEPS", "FREELOADING_INDEX", "FULL_TASK_SUCCESS", "LEVEL_MEAN", "PBT", "SCORE", "SCORE_NAME",
    "SUCCESS_RATE", "TASK_PROGRESS", "result_value",
]
