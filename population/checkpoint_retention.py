"""Which checkpoints a member keeps: the newest `run.checkpoints_to_keep`, and as many best by their own evaluation.

The newest are what `--resume` takes and where a PBT copy's donor checkpoint is (the one the donor saved at its
last decision: `run.checkpoints_to_keep` x `run.checkpoint_every_iterations` must span a decision interval); the
best are what a user evaluates, since a member's success can swing by 0.3 between two evaluations
(`benchmarks/RESULTS.md`, round 11). Tune's `CheckpointConfig` orders by one of the two only, and ordered by score
it deleted a donor's checkpoint before the member copying it had restored it. So Tune keeps every checkpoint and
`KeepNewestAndBest` deletes the others after each save. A checkpoint's score is the member score (`pbt/score`)
of the evaluation of its own policies, in the result that reported it: the checkpoint's own result (manifest),
or with `evaluation.asynchronous` that of the checkpoint `lead_iterations` later. Every result carries the latest
evaluation, and a checkpoint is never judged by another iteration's policies.
"""

from __future__ import annotations

import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from ray.tune import Callback

from mapush_rllib.checkpoints import (
    Checkpoint,
    CheckpointError,
    checkpoint_index,
    recorded_result,
    trial_checkpoints,
    verify,
)
from population import result_keys as keys

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Evaluated:
    """A checkpoint whose policies were evaluated, and the result that reported that evaluation: its own, or with
    `evaluation.asynchronous` the one `lead_iterations` later (`reported_by`, kept as long as it is)."""

    checkpoint: Checkpoint
    score: float
    result: dict
    reported_by: Checkpoint


def evaluations(checkpoints: list[Checkpoint]) -> dict[Path, tuple[float, Checkpoint]]:
    """{folder of a checkpoint whose policies were evaluated: (member score, the checkpoint that reported it)};
    `checkpoints` newest first. A report on iteration W's policies belongs to the reporting checkpoint if that is of
    iteration W, else to the newest checkpoint of iteration W saved before it (a member restored to an earlier
    iteration saves W again, with other policies)."""
    reports: dict[Path, tuple[float, Checkpoint]] = {}
    for reporter in checkpoints:
        iteration = keys.evaluated_iteration(reporter.result)
        score = keys.result_value(reporter.result, keys.SCORE)
        if iteration is None or not isinstance(score, (int, float)) or not math.isfinite(score):
            continue
        if iteration == reporter.training_iteration:
            judged = reporter
        else:
            before = checkpoint_index(reporter.path)
            judged = next((c for c in checkpoints
                           if c.training_iteration == iteration and checkpoint_index(c.path) < before), None)
        if judged is not None:
            reports.setdefault(judged.path, (float(score), reporter))  # the newest report on a checkpoint
    return reports


def recorded_checkpoints(trial_dir: str | Path | None) -> tuple[list[Checkpoint], list[Path]]:
    """(the trial's checkpoints with a manifest, newest first; the folders without one: cut or being written)."""
    if trial_dir is None or not Path(trial_dir).is_dir():
        return [], []
    recorded, unrecorded = [], []
    for path in trial_checkpoints(trial_dir):
        result = recorded_result(path)
        if result is None:
            unrecorded.append(path)
        else:
            recorded.append(Checkpoint(path, result))
    return recorded, unrecorded


def rank_by_evaluation(checkpoints: list[Checkpoint]) -> list[Evaluated]:
    """The evaluated ones, best score first (newer first among equal scores), one per training iteration (PBT can
    save an iteration twice: at its decision and on schedule); `checkpoints` newest first."""
    reports = evaluations(checkpoints)
    evaluated = [c for c in checkpoints if c.path in reports]  # a repeat keeps the newest
    once = list({c.training_iteration: c for c in reversed(evaluated)}.values())
    ranked = [Evaluated(c, reports[c.path][0], reports[c.path][1].result, reports[c.path][1]) for c in once]
    return sorted(ranked, key=lambda e: (e.score, e.checkpoint.training_iteration), reverse=True)


def best_evaluated(trial_dir: str | Path | None) -> Evaluated | None:
    """The trial's complete checkpoint whose policies' evaluation scored best (files checked), or None."""
    for evaluated in rank_by_evaluation(recorded_checkpoints(trial_dir)[0]):
        try:
            verify(evaluated.checkpoint.path)
        except CheckpointError:
            continue
        return evaluated
    return None


def best_checkpoint(trial_dir: str | Path | None) -> Checkpoint | None:
    """The checkpoint of `best_evaluated`, or None."""
    evaluated = best_evaluated(trial_dir)
    return evaluated.checkpoint if evaluated is not None else None


def prune(trial_dir: str | Path | None, keep: int) -> list[Path]:
    """Delete the trial's checkpoints that are neither among the newest `keep` nor the best `keep` (nor those that
    reported the best ones' evaluations), and folders without a manifest older than the newest checkpoint (cut
    copies); returns what was deleted."""
    recorded, unrecorded = recorded_checkpoints(trial_dir)
    best = rank_by_evaluation(recorded)[:keep]
    kept = {c.path for c in recorded[:keep]} | {e.checkpoint.path for e in best} | {e.reported_by.path for e in best}
    newest = recorded[0].path.name if recorded else None
    deleted = [c.path for c in recorded if c.path not in kept]
    deleted += [path for path in unrecorded if newest is not None and path.name < newest]
    for path in deleted:
        shutil.rmtree(path, ignore_errors=True)
    return deleted


class KeepNewestAndBest(Callback):
    """Tune callback: after each checkpoint a member saves, `prune` its folder (in the driver)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep

    def on_trial_save(self, iteration: int, trials: list, trial, **info) -> None:  # noqa: ANN001 -- Tune's hook
        try:
            prune(trial.path, self.keep)  # the run folder (local_path is the driver's staging copy)
        except OSError as error:  # a full or flaky disk: keep training, keep every checkpoint
            logger.warning("checkpoint retention skipped for %s: %s", trial.path, error)
