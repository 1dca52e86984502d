"""Tune's run logs kept whole through the restarts that PBT and `--resume` cause.

Tune (Ray 2.60) writes a run's logs into a staging folder of the driver's Ray session and uploads them to the run
folder now and then. Three of its logs lose or garble rows on the way:

- `JsonLoggerCallback` copies `result.json` back from the run folder every time a trial (re)starts: PBT restarts
  trials all the time (pauses, exploits), and failed trials restart. The copy it reads may be older than the
  staging file, or half written by the uploader, and replaces it: a member of a 4-member run lost its first 120
  rows that way.
  `ResultJsonLogger` reads the run folder's copy only when a trial first starts in this driver: on `--resume`,
  whose staging folder starts empty (what Tune's CSV logger does).
- `CSVLoggerCallback` continues `progress.csv` after `--resume` without a header, in the keys of the first
  new result; when those differ from the file's header, every later row lands in the wrong columns.
  `ProgressCsvLogger` continues a file under the file's own header.
- PBT appends its exploit history (`pbt_global.txt`, `pbt_policy_<trial>.txt`) to the staging folder; after
  `--resume` that starts empty, and its upload replaced the history of the run before the resume.
  `restore_pbt_history` copies the run folder's history into the staging folder before the first append.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pyarrow.fs
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.result import EXPR_PROGRESS_FILE, EXPR_RESULT_FILE

from mapush_rllib.ray_compat import csv_logger_continue, json_logger_reopen

PBT_HISTORY_PREFIX = "pbt_"


class ResultJsonLogger(JsonLoggerCallback):
    """Tune's `result.json` logger, restoring a trial's file from the run folder once per driver, not per restart."""

    def __init__(self) -> None:
        super().__init__()
        # (driver pid, trial id) of the trials started by a driver: keyed by pid, as callbacks may be unpickled
        self._started: set[tuple[int, str]] = set()

    def log_trial_start(self, trial) -> None:  # noqa: ANN001 -- Tune's signature
        if (os.getpid(), trial.trial_id) not in self._started:  # first start in this driver (new run or --resume)
            self._started.add((os.getpid(), trial.trial_id))
            super().log_trial_start(trial)
            return
        self.update_config(trial, trial.config)  # params.json: the config after an exploit
        # restarted after a failure ended it: the staging file is complete, append to it
        json_logger_reopen(self, trial, Path(trial.local_path, EXPR_RESULT_FILE))


class ProgressCsvLogger(CSVLoggerCallback):
    """Tune's `progress.csv` logger, continuing an existing file in the columns of its header."""

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:  # noqa: ANN001 -- Tune's signature
        def read_header() -> list[str]:
            with open(Path(trial.local_path, EXPR_PROGRESS_FILE), newline="") as existing:
                return next(csv.reader(existing))

        csv_logger_continue(self, trial, read_header)
        super().log_trial_result(iteration, trial, result)


def restore_pbt_history(trial) -> None:  # noqa: ANN001 -- a Tune Trial
    """Copy `pbt_*.txt` of the run folder into the driver's staging folder where the staging one is missing."""
    storage = trial.storage
    local = Path(trial.local_experiment_path)
    local.mkdir(parents=True, exist_ok=True)
    listing = storage.storage_filesystem.get_file_info(
        pyarrow.fs.FileSelector(storage.experiment_fs_path, allow_not_found=True))
    for info in listing:
        if info.type != pyarrow.fs.FileType.File or not info.base_name.startswith(PBT_HISTORY_PREFIX):
            continue
        target = local / info.base_name
        if not target.exists():
            pyarrow.fs.copy_files(info.path, str(target), source_filesystem=storage.storage_filesystem)
