"""Which checkpoints a member keeps: the newest `run.checkpoints_to_keep`, and as many best by their own evaluation.

The newest are what `--resume` and a PBT copy take (a member copies its donor's newest, and may restore it a while
later); the best are what a user evaluates, since a member's success can swing by 0.3 between two evaluations
(`benchmarks/RESULTS.md`, round 11). Tune's `CheckpointConfig` orders by one of the two only, and ordered by score
it deleted a donor's newest checkpoint before the member copying it had restored it. So Tune keeps every
checkpoint and `KeepNewestAndBest` deletes the others after each save. A checkpoint's score is the
`checkpoint_score` its manifest records: the member score of an iteration that ran the evaluation, NaN in the
others (`population.score`), so a checkpoint is never judged by an earlier evaluation.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from ray.tune import Callback

from mapush_rllib.checkpoints import Checkpoint, recorded_result, trial_checkpoints
from population import result_keys as keys


def scored_checkpoints(trial_dir: str | Path | None) -> list[Checkpoint]:
    """The trial's checkpoints with a manifest, newest first (folders still being written have none)."""
    if trial_dir is None or not Path(trial_dir).is_dir():
        return []
    found = [(path, recorded_result(path)) for path in trial_checkpoints(trial_dir)]
    return [Checkpoint(path, result) for path, result in found if result is not None]


def evaluation_score(checkpoint: Checkpoint) -> float | None:
    """The score of the checkpoint's own evaluation; None when its iteration ran none."""
    score = keys.result_value(checkpoint.result, keys.CHECKPOINT_SCORE)
    return float(score) if isinstance(score, (int, float)) and math.isfinite(score) else None


def best_checkpoints(trial_dir: str | Path | None, count: int | None = None) -> list[Checkpoint]:
    """The trial's evaluated checkpoints, best score first (the newer first among equal scores)."""
    evaluated = [c for c in scored_checkpoints(trial_dir) if evaluation_score(c) is not None]
    ranked = sorted(evaluated, key=lambda c: (evaluation_score(c), c.training_iteration), reverse=True)
    return ranked if count is None else ranked[:count]


def prune(trial_dir: str | Path, keep: int) -> list[Path]:
    """Delete the trial's checkpoints that are neither among the newest `keep` nor the best `keep`; returns them."""
    checkpoints = scored_checkpoints(trial_dir)
    kept = {c.path for c in checkpoints[:keep]} | {c.path for c in best_checkpoints(trial_dir, keep)}
    deleted = [c.path for c in checkpoints if c.path not in kept]
    for path in deleted:
        shutil.rmtree(path, ignore_errors=True)
    return deleted


class KeepNewestAndBest(Callback):
    """Tune callback: after each checkpoint a member saves, `prune` its folder (in the driver)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def on_trial_save(self, iteration: int, trials: list, trial, **info) -> None:  # noqa: ANN001 -- Tune's hook
        prune(trial.path, self.keep)  # the run folder (local_path is the driver's staging copy)
