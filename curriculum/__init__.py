"""Curriculum over the MAPush task: per-env levels of target distance and box size, chosen at each env's reset.

Backend-independent and Ray-free (it imports only `mapush_rllib.task` and `.sim`, beside the RLlib adapter, not
on it): `CurriculumScheduler` reads per-env outcomes and writes per-env task parameters through `MAPushVecEnv`'s
`task_schedule` hook. See `scheduler.py` for what a level is and how
envs move between levels, `config.py` for the YAML schema, `metrics.py` for what is logged.
"""

from curriculum.config import CurriculumConfig, CurriculumConfigError, LevelConfig
from curriculum.levels import LevelTable, build_level_table
from curriculum.metrics import CurriculumStats
from curriculum.scheduler import CurriculumScheduler, CurriculumStateError, eval_slice

__all__ = [
    "CurriculumConfig",
    "CurriculumConfigError",
    "CurriculumScheduler",
    "CurriculumStateError",
    "CurriculumStats",
    "LevelConfig",
    "LevelTable",
    "build_level_table",
    "eval_slice",
]
