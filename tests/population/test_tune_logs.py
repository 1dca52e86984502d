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

from population.tune_logs import ProgressCsvLogger, ResultJsonLogger

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


def give_checkpoint(trial: Trial, tmp_path: Path) -> None:
    """A saved checkpoint: what makes Tune's loggers copy their file back from the run folder at a (re)start."""
    folder = tmp_path / "checkpoint_000000"
    folder.mkdir(exist_ok=True)
    trial.run_metadata.checkpoint_manager.register_checkpoint(
        _TrainingResult(checkpoint=Checkpoint.from_directory(str(folder)), metrics={}))


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
    with open(Path(trial.local_path, "progress.csv"), newline="") as f:
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
    logger.log_trial_start(trial)  # ... and Tune restarts it (FailureConfig)
    logger.log_trial_result(5, trial, {"training_iteration": 5})
    logger.log_trial_end(trial)
    lines = Path(trial.local_path, "result.json").read_text().splitlines()
    iterations = [json.loads(line)["training_iteration"] for line in lines]
    assert (iterations == [1, 2, 3, 4, 5]) == keeps_rows, iterations
