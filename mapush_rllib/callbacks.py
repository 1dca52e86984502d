"""Task metrics and live settings in every training result (and so in TensorBoard).

- `env_runners/mapush/<metric>`: success rate, exception rate, finish time, collaboration degree,
  freeloading index, per-agent engagement, contact share and return, and the per-agent episode sum of every
  reward term (`mapush_rllib.metrics.episode_values`), over the last `metrics_window_episodes` episodes
  each env runner finished (averaged over runners). A rolling window, not "episodes of this iteration":
  20 s episodes that start together end together, so most iterations finish no episode at all.
  `env_runners/mapush/window_episodes` says how many episodes the window holds.
  The batched runner keeps its window itself; with the stock runner `MAPushCallbacks` does.
- `live_settings/<module>/{entropy_coeff,lr}` and `live_settings/reward_scales/<agent>/<term>`: the
  values the learners and envs actually hold after the iteration, read back from them.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from mapush_rllib.config import NUM_AGENTS, REWARD_TERMS
from mapush_rllib.metrics import EpisodeStats, episode_values

METRICS_KEY = "mapush"
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
            metrics.log_value((METRICS_KEY, *key.split("/")), mean, reduce="mean", window=1)
        metrics.log_value((METRICS_KEY, "window_episodes"), self.num_episodes, reduce="mean", window=1)


class MAPushCallbacks(RLlibCallback):
    """Task metrics for the stock runner's episodes, and live settings in every result."""

    def __init__(self) -> None:
        super().__init__()
        self.window: EpisodeWindow | None = None

    def on_episode_end(self, *, env_runner: Any, env: Any, env_index: int, **kwargs: Any) -> None:
        stats = env.envs[env_index].unwrapped.last_episode
        if stats is not None and not _is_batched(env_runner):
            self._window_of(env_runner).add(stats)

    def on_sample_end(self, *, env_runner: Any, metrics_logger: MetricsLogger, **kwargs: Any) -> None:
        if not _is_batched(env_runner):  # the batched runner keeps and logs its own window
            self._window_of(env_runner).log(metrics_logger)

    def _window_of(self, env_runner: Any) -> EpisodeWindow:
        if self.window is None:
            self.window = EpisodeWindow(env_runner.config.metrics_num_episodes_for_smoothing)
        return self.window

    def on_train_result(self, *, algorithm: Any, result: dict, **kwargs: Any) -> None:
        from mapush_rllib.live_settings import read_live_settings

        result["live_settings"] = read_live_settings(algorithm)
        # "" until a checkpoint is loaded; then the digest of the env-side (curriculum) state it held
        result["restored_env_state_digest"] = getattr(algorithm, "restored_env_state_digest", "")


def _is_batched(env_runner: Any) -> bool:
    from mapush_rllib.runner import BatchedEnvRunner  # here: the runner module imports this one

    return isinstance(env_runner, BatchedEnvRunner)
