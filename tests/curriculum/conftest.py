"""Curriculum tests: one torch thread (the machine has 2 shared cores), tiny batches."""

import pytest
import torch

from curriculum import CurriculumConfig, CurriculumScheduler
from mapush_rllib.sim.config import PhysicsConfig
from mapush_rllib.task.config import TaskConfig

torch.set_num_threads(1)


@pytest.fixture
def make_scheduler():
    """CurriculumScheduler over the default task and physics, with config overrides as keyword arguments."""

    def make(num_envs: int = 8, seed: int = 0, env_id_offset: int = 0, **config) -> CurriculumScheduler:
        config.setdefault("eval_fraction", 0.0)
        config.setdefault("rule", "threshold")  # the per-env rule these tests were written for; pooled: own tests
        return CurriculumScheduler(
            CurriculumConfig(**config), TaskConfig(), PhysicsConfig(),
            num_envs=num_envs, seed=seed, env_id_offset=env_id_offset,
        )

    return make
