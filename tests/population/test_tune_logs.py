"""Tune's own loggers, on a real Trial of a real local Ray, with the losses `population.tune_logs` fixes.

Each test runs Tune's logger (expected to lose or garble rows) and ours (expected not to): when a Ray release
fixes its logger, the first case fails and the workaround can go."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import ray
from ray.train import Checkpoint
from ray.train._internal.session import _TrainingResult
from ray.train._internal.storage import StorageContext
from ray.tune.experiment import Trial
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from population.tune_logs import ProgressCsvLogger, ResultJsonLogger, cut_logs_after

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def make_trial(tmp_path: Path) -> Trial:
    storage = StorageContext(storage_path=str(tmp_path / "runs"), experiment_dir_name="exp")
    trial = Trial("__fake", stub=True, storage=storage)
    trial.init_local_path()
    Path(trial.storage.trial_fs_path).mkdir(parents=True, exist_ok=True)
    return trial


def written(logger_class: type, trial: Trial, name: str) -> Path:
    """Where a logger's file is: ours write into the run folder, Tune's into its staging folder (uploaded later)."""
    ours = logger_class in (ResultJsonLogger, ProgressCsvLogger)
    return Path(trial.storage.trial_fs_path if ours else trial.local_path, name)


def give_checkpoint(trial: Trial, tmp_path: Path) -> None:
    """A saved checkpoint: what makes Tune's loggers copy their file back from the run folder at a (re)start."""
    folder = tmp_path / "checkpoint_000000"
    folder.mkdir(exist_ok=True)
    trial.run_metadata.checkpoint_manager.register_checkpoint(
        _TrainingResult(checkpoint=Checkpoint.from_directory(str(folder)), metrics={"training_iteration": 4}))


@pytest.mark.parametrize(("logger_class", "keeps_columns"), [(CSVLoggerCallback, False), (ProgressCsvLogger, True)])
def test_progress_csv_continued_by_a_new_driver_keeps_its_columns(tmp_path, logger_class, keeps_columns) -> None:
    """After --resume the first result may carry keys the file's first row did not (metrics that appear once
    episodes end); rows must still land under the header's columns."""
    trial = make_trial(tmp_path)
    first = logger_class()
    first.log_trial_result(1, trial, {"training_iteration": 1, "loss": 0.5})
    first.log_trial_result(2, trial, {"training_iteration": 2, "loss": 0.4, "success": 0.1})
    first.log_trial_end(trial)
    resumed = logger_class()  # a new driver process
    resumed.log_trial_result(3, trial, {"success": 0.2, "training_iteration": 3, "loss": 0.3})
    resumed.log_trial_end(trial)
    with open(written(logger_class, trial, "progress.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    aligned = [row["training_iteration"] for row in rows] == ["1", "2", "3"] and rows[2]["loss"] == "0.3"
    assert aligned == keeps_columns, rows


@pytest.mark.parametrize(("logger_class", "keeps_rows"), [(JsonLoggerCallback, False), (ResultJsonLogger, True)])
def test_result_json_keeps_its_rows_when_a_trial_restarts(tmp_path, logger_class, keeps_rows) -> None:
    """PBT pauses, exploits and failures restart trials; the run folder's copy of result.json is older than the
    staging file then (uploads come now and then) and must not replace it."""
    trial = make_trial(tmp_path)
    give_checkpoint(trial, tmp_path)
    Path(trial.storage.trial_fs_path, "result.json").write_text(json.dumps({"training_iteration": 1}) + "\n")
    logger = logger_class()
    logger.log_trial_start(trial)  # the first start in this driver reads the run folder's copy (--resume)
    for iteration in (2, 3):
        logger.log_trial_result(iteration, trial, {"training_iteration": iteration})
    logger.log_trial_start(trial)  # a restart (PBT pause or exploit) in the same driver
    logger.log_trial_result(4, trial, {"training_iteration": 4})
    logger.log_trial_end(trial, failed=True)  # the trial raised ...
    logger.log_trial_start(trial)  # ... and Tune restarts it (FailureConfig) from its checkpoint of iteration 4
    logger.log_trial_result(5, trial, {"training_iteration": 5})
    logger.log_trial_end(trial)
    lines = written(logger_class, trial, "result.json").read_text().splitlines()
    iterations = [json.loads(line)["training_iteration"] for line in lines]
    assert (iterations == [1, 2, 3, 4, 5]) == keeps_rows, iterations


@pytest.mark.parametrize("logger_class", [JsonLoggerCallback, ResultJsonLogger])
def test_result_rows_are_in_the_run_folder_as_soon_as_logged(tmp_path, logger_class) -> None:
    """A run killed between Tune's uploads loses the rows not yet uploaded: ours are written in the run folder."""
    trial = make_trial(tmp_path)
    logger = logger_class()
    for iteration in (1, 2, 3):
        logger.log_trial_result(iteration, trial, {"training_iteration": iteration})
    in_run_folder = Path(trial.storage.trial_fs_path, "result.json")  # what a resume after a kill -9 finds
    rows = in_run_folder.read_text().splitlines() if in_run_folder.exists() else []
    assert (len(rows) == 3) == (logger_class is ResultJsonLogger), rows
    logger.log_trial_end(trial)


def test_a_failed_member_restarted_from_its_checkpoint_logs_the_repeated_iterations_once(tmp_path) -> None:
    """Tune restores a failed member from its last checkpoint: the rows after it are trained again."""
    trial = make_trial(tmp_path)
    folder = tmp_path / "checkpoint_000000"
    folder.mkdir()
    json_logger, csv_logger = ResultJsonLogger(), ProgressCsvLogger()
    for iteration in (1, 2, 3, 4):
        for logger in (json_logger, csv_logger):
            logger.log_trial_result(iteration, trial, {"training_iteration": iteration, "loss": iteration})
        if iteration == 2:
            trial.run_metadata.checkpoint_manager.register_checkpoint(_TrainingResult(
                checkpoint=Checkpoint.from_directory(str(folder)), metrics={"training_iteration": 2}))
    for logger in (json_logger, csv_logger):
        logger.log_trial_end(trial, failed=True)
    json_logger.log_trial_start(trial)  # Tune restarts it from checkpoint_000000 (iteration 2)
    for iteration in (3, 4):
        for logger in (json_logger, csv_logger):
            logger.log_trial_result(iteration, trial, {"training_iteration": iteration, "loss": -iteration})
    for logger in (json_logger, csv_logger):
        logger.log_trial_end(trial)
    rows = [json.loads(line) for line in written(ResultJsonLogger, trial, "result.json").read_text().splitlines()]
    assert [(r["training_iteration"], r["loss"]) for r in rows] == [(1, 1), (2, 2), (3, -3), (4, -4)]
    with open(written(ProgressCsvLogger, trial, "progress.csv"), newline="") as f:
        assert [(r["training_iteration"], r["loss"]) for r in csv.DictReader(f)] == [
            ("1", "1"), ("2", "2"), ("3", "-3"), ("4", "-4")]


def test_cut_logs_after_drops_the_rows_a_resume_repeats_and_a_torn_last_line(tmp_path) -> None:
    rows = [{"training_iteration": i} for i in (1, 2, 3, 1, 2)]  # a second lineage after a PBT copy of iteration 0
    (tmp_path / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"training_it')
    (tmp_path / "progress.csv").write_text("training_iteration,x\n1,a\n2,b\n3,c\n1,d\n2,e\n3,")
    assert cut_logs_after(tmp_path, 1) == 2  # after the *last* row of iteration 1
    kept = [json.loads(line)["training_iteration"] for line in (tmp_path / "result.json").read_text().splitlines()]
    assert kept == [1, 2, 3, 1]
    with open(tmp_path / "progress.csv", newline="") as f:
        assert [r["x"] for r in csv.DictReader(f)] == ["a", "b", "c", "d"]
    assert cut_logs_after(tmp_path, 0) == 4  # no checkpoint: everything is trained again
    assert (tmp_path / "result.json").read_text() == ""


def test_cut_logs_after_writes_back_the_checkpoints_row_a_kill_kept_from_the_logs(tmp_path) -> None:
    """PBT saves a donor's checkpoint before Tune's loggers see its result: killed in between, the logs stop one
    row short of the checkpoint, and the resume's first row would skip an iteration. The checkpoint's recorded
    result fills it, in both files; a file that already has the row, or stops earlier, is left as it is."""
    (tmp_path / "result.json").write_text("".join(json.dumps({"training_iteration": i, "trial_id": "t1", "loss": i})
                                                  + "\n" for i in (1, 2)))
    (tmp_path / "progress.csv").write_text("training_iteration,loss,eval/success_rate\n1,1,0.0\n2,2,0.0\n")
    recorded = {"training_iteration": 3, "trial_id": "default", "loss": 3, "eval": {"success_rate": 0.5},
                "config": {"lr": 1e-3}}
    assert cut_logs_after(tmp_path, 3, recorded) == 0
    rows = [json.loads(line) for line in (tmp_path / "result.json").read_text().splitlines()]
    assert [(r["training_iteration"], r["loss"], r["trial_id"]) for r in rows] == [(1, 1, "t1"), (2, 2, "t1"),
                                                                                   (3, 3, "t1")]
    with open(tmp_path / "progress.csv", newline="") as f:
        assert [(r["training_iteration"], r["eval/success_rate"]) for r in csv.DictReader(f)] == [
            ("1", "0.0"), ("2", "0.0"), ("3", "0.5")]
    before = (tmp_path / "result.json").read_text(), (tmp_path / "progress.csv").read_text()
    assert cut_logs_after(tmp_path, 3, recorded) == 0  # the row is there now: nothing added twice
    assert cut_logs_after(tmp_path, 5, {**recorded, "training_iteration": 5}) == 0  # two rows short: not a kill gap
    assert ((tmp_path / "result.json").read_text(), (tmp_path / "progress.csv").read_text()) == before
