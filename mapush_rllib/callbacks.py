"""Task metrics and live settings in every training result (and so in TensorBoard).

- `env_runners/mapush/<metric>`: success rate, exception rate, finish time, collaboration degree,
  freeloading index, per-agent engagement, contact share and return, and the per-agent episode sum of every
  reward term (`mapush_rllib.task.metrics.episode_values`), over the last `metrics_window_episodes` episodes
  each env runner finished (averaged over runners). A rolling window, not "episodes of this iteration":
  20 s episodes that start together end together, so most iterations finish no episode at all.
  `env_runners/mapush/window_episodes` says how many episodes the window holds.
  The batched runner keeps its window itself; with the stock runner `MAPushCallbacks` does.
- `live_settings/<module>/{entropy_coeff,lr}` and `live_settings/reward_scales/<agent>/<term>`: the
  values the learners and envs actually hold after the iteration, read back from them.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.utils.metrics.metrics_logger import MetricsLogger

from mapush_rllib.episode_window import EpisodeWindow
from mapush_rllib.live_settings import read_live_settings
from mapush_rllib.result_keys import LIVE_SETTINGS


class MAPushCallbacks(RLlibCallback):
    """Task metrics for the stock runner's episodes, and live settings in every result."""

    def __init__(self) -> None:
        super().__init__()
        self.window: EpisodeWindow | None = None

    def on_episode_end(self, *, env_runner: Any, env: Any, env_index: int, **kwargs: Any) -> None:
        stats = env.envs[env_index].unwrapped.last_episode
        if stats is not None and not _keeps_own_window(env_runner):
            self._window_of(env_runner).add(stats)

    def on_sample_end(self, *, env_runner: Any, metrics_logger: MetricsLogger, **kwargs: Any) -> None:
        if not _keeps_own_window(env_runner):
            self._window_of(env_runner).log(metrics_logger)

    def _window_of(self, env_runner: Any) -> EpisodeWindow:
        if self.window is None:
            self.window = EpisodeWindow(env_runner.config.metrics_num_episodes_for_smoothing)
        return self.window

    def on_train_result(self, *, algorithm: Any, result: dict, **kwargs: Any) -> None:
        result[LIVE_SETTINGS] = read_live_settings(algorithm)
        # "" until a checkpoint is loaded; then the digest of the env-side (curriculum) state it held
        result["restored_env_state_digest"] = getattr(algorithm, "restored_env_state_digest", "")


def _keeps_own_window(env_runner: Any) -> bool:
    """True for a runner that fills and logs its own `episode_window` (the batched runner, which fires no
    per-episode callbacks)."""
    return getattr(env_runner, "episode_window", None) is not None
