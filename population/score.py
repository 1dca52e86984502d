"""The member score in every training result, `pbt/score`, from the true objective only (`population/exploit.py`).

Runs as an RLlib `on_train_result` function after the task-metric and curriculum callbacks have filled the
result, so it reads `curriculum/full_task_success_rate`, `curriculum/level_mean` and
`env_runners/mapush/freeloading_index` of the same iteration. Missing or NaN inputs (no finished episode yet)
count as 0, so a member without evidence never outranks one with it.
"""

from __future__ import annotations

import math
from typing import Any

from population.exploit import member_score


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0


class ScoreFunction:
    """Picklable `on_train_result` callable (it travels to every trial) that adds `result["pbt"]`."""

    def __init__(self, *, level_weight: float, freeloading_weight: float, top_level: int) -> None:
        self.level_weight = level_weight
        self.freeloading_weight = freeloading_weight
        self.top_level = max(1, top_level)

    def __call__(self, *, result: dict, **kwargs: Any) -> None:
        curriculum = result.get("curriculum", {})
        success = _number(curriculum.get("full_task_success_rate"))
        progress = min(1.0, _number(curriculum.get("level_mean")) / self.top_level)
        freeloading = _number(result.get("env_runners", {}).get("mapush", {}).get("freeloading_index"))
        result["pbt"] = {
            "score": member_score(success, progress, freeloading, level_weight=self.level_weight,
                                  freeloading_weight=self.freeloading_weight),
            "full_task_success": success,
            "curriculum_progress": progress,
            "freeloading_index": freeloading,
        }
