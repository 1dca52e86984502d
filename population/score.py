"""The member score in every training result, `pbt/score`, from the true objective only (`population/exploit.py`).

Runs as an RLlib `on_train_result` function after the member's evaluation (`mapush_rllib.evaluation`) and the
curriculum callbacks have filled the result, so it reads `eval/{success_rate,task_progress,freeloading_index,
contribution_balance}` (the calculator protocol on held-out episodes) and `curriculum/level_mean` of the same
iteration. Missing or NaN inputs (before the first evaluation) count as 0, so a member without evidence never
outranks one with it; without contribution runs the balance term is left out.
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
        success = _number(keys.result_value(result, keys.EVAL_SUCCESS_RATE))
        progress = min(1.0, _number(keys.result_value(result, keys.LEVEL_MEAN)) / self.top_level)
        freeloading = _number(keys.result_value(result, keys.EVAL_FREELOADING_INDEX))
        task_progress = _number(keys.result_value(result, keys.EVAL_TASK_PROGRESS))
        balance = keys.result_value(result, keys.EVAL_CONTRIBUTION_BALANCE)
        balance = 1.0 if balance is None else _number(balance)  # None: contribution runs are off
        result[keys.PBT] = {
            keys.SCORE_NAME: member_score(
                success, progress, freeloading, task_progress, balance, **self.weights.model_dump()
            ),
            "full_task_success": success,
            "curriculum_progress": progress,
            "task_progress": task_progress,
            "freeloading_index": freeloading,
            "contribution_balance": balance,
        }
