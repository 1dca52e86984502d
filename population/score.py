"""The member score in every training result, `pbt/score`, from the true objective only (`population/exploit.py`).

Runs as an RLlib `on_train_result` function after the task-metric and curriculum callbacks have filled the
result, so it reads `curriculum/full_task_success_rate`, `curriculum/level_mean` and
`env_runners/mapush/{task_progress,freeloading_index}` of the same iteration. Missing or NaN inputs (no finished
episode yet) count as 0, so a member without evidence never outranks one with it.
"""

from __future__ import annotations

import math
from typing import Any

from population import result_keys as keys
from population.exploit import member_score
from population.pbt_config import ScoreConfig


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


class ScoreFunction:
    """Picklable `on_train_result` callable (it travels to every trial) that adds `pbt/...` to the result."""

    def __init__(self, weights: ScoreConfig, *, top_level: int) -> None:
        self.weights = weights
        self.top_level = max(1, top_level)

    def __call__(self, *, result: dict, **kwargs: Any) -> None:
        success = _number(keys.result_value(result, keys.FULL_TASK_SUCCESS))
        progress = min(1.0, _number(keys.result_value(result, keys.LEVEL_MEAN)) / self.top_level)
        freeloading = _number(keys.result_value(result, keys.FREELOADING_INDEX))
        task_progress = _number(keys.result_value(result, keys.TASK_PROGRESS))
        result[keys.PBT] = {
            keys.SCORE_NAME: member_score(
                success, progress, freeloading, task_progress, **self.weights.model_dump()
            ),
            "full_task_success": success,
            "curriculum_progress": progress,
            "task_progress": task_progress,
            "freeloading_index": freeloading,
        }
