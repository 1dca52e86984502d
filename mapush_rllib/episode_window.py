"""The rolling window of task metrics an env runner reports: `env_runners/mapush/<metric>` in every result.

Over the last `size` episodes the runner *finished*, so it favours episodes that end early (quick successes) and
says how many episodes it holds (`window_episodes`); decisions use the calculator protocol instead
(`mapush_rllib.task.calculator`). Both runners use it: the batched runner keeps its own, and `MAPushCallbacks`
keeps one for RLlib's stock runner.
"""

from __future__ import annotations

import math
from collections import deque

from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from mapush_rllib.result_keys import TASK_METRICS_KEY
from mapush_rllib.sim.config import NUM_AGENTS
from mapush_rllib.task.config import REWARD_TERMS
from mapush_rllib.task.metrics import EpisodeStats, episode_values

#: Value of a metric when no episode in the window counts for it (as `metrics.summarize`).
EMPTY_VALUE = {"collaboration_degree": 0.0, "freeloading_index": 0.0}


class EpisodeWindow:
    """Task metrics of the last `size` episodes one env runner finished."""

    def __init__(self, size: int, num_agents: int = NUM_AGENTS) -> None:
        self.size = size
        # Every key from the start, so the first result (and Tune's progress.csv header) has all columns.
        self.values: dict[str, deque[float]] = {
            key: deque(maxlen=size) for key in episode_values(EpisodeStats.empty(num_agents, len(REWARD_TERMS)))
        }
        self.num_episodes = 0

    def add(self, stats: EpisodeStats) -> None:
        for key, per_episode in episode_values(stats).items():
            self.values[key].extend(per_episode.double().cpu().tolist())
        self.num_episodes = min(self.size, self.num_episodes + len(stats))

    def log(self, metrics: MetricsLogger) -> None:
        """One value per metric (its NaN-ignoring window mean; NaN before any episode) into the runner's metrics."""
        for key, window in self.values.items():
            counted = [value for value in window if not math.isnan(value)]
            if counted:
                mean = sum(counted) / len(counted)
            else:
                mean = EMPTY_VALUE.get(key, math.nan) if self.num_episodes else math.nan
            metrics.log_value((TASK_METRICS_KEY, *key.split("/")), mean, reduce="mean", window=1)
        metrics.log_value((TASK_METRICS_KEY, "window_episodes"), self.num_episodes, reduce="mean", window=1)
