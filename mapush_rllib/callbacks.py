"""Task metrics and live settings in every training result (and so in TensorBoard).

- `env_runners/mapush/<metric>`: success rate, finish time, collaboration degree, freeloading index,
  per-agent engagement, contact share and return, and per-agent sum of every reward term
  (`mapush_rllib.metrics.episode_values`), averaged per episode over the last episodes. The batched
  runner logs them itself; with the stock runner `on_episode_end` does.
- `live_settings/<module>/{entropy_coeff,lr}` and `live_settings/reward_scales/<agent>/<term>`: the
  values the learners and envs actually used in this iteration, read back from them.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from mapush_rllib.metrics import EpisodeStats, episode_values

METRICS_KEY = "mapush"


def log_mapush_episode_metrics(metrics: MetricsLogger, stats: EpisodeStats, window: int) -> None:
    """Log every finished episode's task metrics, one value per episode, under `mapush/`."""
    values = {key: value.double().cpu().tolist() for key, value in episode_values(stats).items()}
    for key, per_episode in values.items():
        for value in per_episode:
            metrics.log_value((METRICS_KEY, *key.split("/")), value, reduce="mean", window=window)


def metrics_window(config: Any) -> int:
    """Episodes per env runner in the smoothing window, as RLlib splits it over runners."""
    return max(1, -(-config.metrics_num_episodes_for_smoothing // (config.num_env_runners or 1)))


class MAPushCallbacks(RLlibCallback):
    """Task metrics for the stock runner's episodes, and live settings in every result."""

    def on_episode_end(self, *, env_runner: Any, metrics_logger: MetricsLogger, env: Any, env_index: int,
                       **kwargs: Any) -> None:
        stats = env.envs[env_index].unwrapped.last_episode
        if stats is not None:
            log_mapush_episode_metrics(metrics_logger, stats, metrics_window(env_runner.config))

    def on_train_result(self, *, algorithm: Any, result: dict, **kwargs: Any) -> None:
        from mapush_rllib.live_settings import read_live_settings

        result["live_settings"] = read_live_settings(algorithm)
