"""Which checkpoints a member keeps (`population.checkpoint_retention`), on checkpoint folders written here with
real manifests: the newest K, the best K by their own evaluation, one per iteration, damaged ones never named best."""

from __future__ import annotations

import math
from pathlib import Path

from mapush_rllib.checkpoints import write_manifest
from population.checkpoint_retention import best_checkpoint, prune


def checkpoint(trial_dir: Path, index: int, iteration: int, score: float = math.nan, *, manifest: bool = True,
               name: str | None = None) -> Path:
    path = trial_dir / (name or f"checkpoint_{index:06d}")
    path.mkdir(parents=True)
    (path / "weights.bin").write_bytes(bytes([index]) * 64)
    if manifest:  # a result as the member's: the score and its latest evaluation (this iteration's, if scored)
        evaluated = score == score
        # without an evaluation, the result carries an earlier one's score: 1.0, above all here, so judging a
        # checkpoint by it would show
        write_manifest(path, {"training_iteration": iteration, "pbt": {"score": score if evaluated else 1.0},
                              "eval": {"iteration": iteration if evaluated else iteration - 1}})
    return path


def test_prune_keeps_the_newest_and_the_best_by_their_own_evaluation(tmp_path: Path) -> None:
    scores = {2: 0.1, 4: 0.5, 6: 0.2, 8: 0.05}  # evaluations; the odd iterations ran none (NaN)
    for iteration in range(1, 9):
        checkpoint(tmp_path, iteration - 1, iteration, scores.get(iteration, math.nan))
    passed_over = checkpoint(tmp_path, 0, 0, name="passed_over_checkpoint_000099")
    deleted = prune(tmp_path, keep=2)
    kept = sorted(p.name for p in tmp_path.glob("checkpoint_*"))
    # newest 2: iterations 8 and 7; best 2: iteration 4 (0.5) and 6 (0.2), not 2 (0.1) nor the NaN ones
    assert kept == ["checkpoint_000003", "checkpoint_000005", "checkpoint_000006", "checkpoint_000007"]
    assert sorted(p.name for p in deleted) == ["checkpoint_000000", "checkpoint_000001", "checkpoint_000002",
                                               "checkpoint_000004"]
    assert passed_over.exists(), "folders that resume passed over are left for the user"


def test_cut_folders_go_once_older_than_the_newest_checkpoint_and_one_being_written_stays(tmp_path: Path) -> None:
    checkpoint(tmp_path, 0, 1, manifest=False)  # cut: no manifest, older than a complete one
    checkpoint(tmp_path, 1, 2, 0.3)
    being_written = checkpoint(tmp_path, 2, 3, manifest=False)
    prune(tmp_path, keep=4)
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*")) == ["checkpoint_000001", "checkpoint_000002"]
    assert being_written.exists()


def test_an_iteration_saved_twice_counts_once_among_the_best(tmp_path: Path) -> None:
    checkpoint(tmp_path, 0, 2, 0.4)
    checkpoint(tmp_path, 1, 4, 0.9)  # PBT's decision save ...
    checkpoint(tmp_path, 2, 4, 0.9)  # ... and the scheduled one of the same iteration
    for index, iteration in enumerate(range(5, 9), start=3):
        checkpoint(tmp_path, index, iteration)
    prune(tmp_path, keep=2)
    kept = sorted(p.name for p in tmp_path.glob("checkpoint_*"))
    assert kept == ["checkpoint_000000", "checkpoint_000002", "checkpoint_000005", "checkpoint_000006"]


def test_the_best_checkpoint_is_a_complete_one(tmp_path: Path) -> None:
    checkpoint(tmp_path, 0, 2, 0.4)
    best = checkpoint(tmp_path, 1, 4, 0.9)
    checkpoint(tmp_path, 2, 5)
    assert best_checkpoint(tmp_path).path == best
    (best / "weights.bin").write_bytes(b"cut")
    found = best_checkpoint(tmp_path)
    assert found.training_iteration == 2 and found.result["pbt"]["score"] == 0.4
    assert best_checkpoint(tmp_path / "missing") is None


def test_an_asynchronous_evaluation_scores_the_checkpoint_of_the_policies_it_judged(tmp_path: Path) -> None:
    """`evaluation.asynchronous`: the result of iteration 4 reports the evaluation of iteration 2's policies, so the
    checkpoint of iteration 2 is the best, and the one of 4 (which says so) is kept with it."""
    for index, iteration in enumerate(range(1, 9)):
        path = checkpoint(tmp_path, index, iteration)
        if iteration in (4, 8):  # reports of iterations 2 (0.9) and 6 (0.1)
            write_manifest(path, {"training_iteration": iteration, "pbt": {"score": 0.9 if iteration == 4 else 0.1},
                                  "eval": {"iteration": iteration, "weights_iteration": iteration - 2}})
    assert best_checkpoint(tmp_path).path.name == "checkpoint_000001"  # iteration 2
    prune(tmp_path, keep=1)
    kept = sorted(p.name for p in tmp_path.glob("checkpoint_*"))
    # newest: iteration 8; best: iteration 2 (0.9 > 0.1) and iteration 4, whose result says so
    assert kept == ["checkpoint_000001", "checkpoint_000003", "checkpoint_000007"]
    assert best_checkpoint(tmp_path).path.name == "checkpoint_000001"


def test_a_report_on_policies_saved_again_after_a_restore_belongs_to_the_checkpoint_it_judged(tmp_path: Path) -> None:
    """Iteration 4 reported on iteration 2's policies (0.9); then the member was restored to iteration 1 and saved
    iterations 2-4 again, with other policies, iteration 4 evaluating itself (0.1): the old report stays with the
    old checkpoint of iteration 2."""
    for index, iteration in enumerate([1, 2, 3, 4, 2, 3, 4]):
        path = checkpoint(tmp_path, index, iteration)
        if index == 3:
            write_manifest(path, {"training_iteration": 4, "pbt": {"score": 0.9},
                                  "eval": {"iteration": 4, "weights_iteration": 2}})
        if index == 6:
            write_manifest(path, {"training_iteration": 4, "pbt": {"score": 0.1},
                                  "eval": {"iteration": 4, "weights_iteration": 4}})
    assert best_checkpoint(tmp_path).path.name == "checkpoint_000001"
    prune(tmp_path, keep=1)
    assert sorted(p.name for p in tmp_path.glob("checkpoint_*")) == [
        "checkpoint_000001", "checkpoint_000003", "checkpoint_000006"]  # best, its reporter, newest
