"""Tune's run logs kept whole through the restarts that PBT, failures, kills and `--resume` cause.

Tune (Ray 2.60) writes a run's logs into a staging folder of the driver's Ray session and uploads them to the run
folder now and then (at every save of its experiment state, 10 s apart or more). Its logs lose or garble rows:

- A run killed between two uploads leaves a `result.json` and `progress.csv` behind the checkpoints in the run
  folder (a resume then lost those rows), or half copied. `JsonLoggerCallback` also copies `result.json` back
  from the run folder every time a trial (re)starts, and PBT restarts trials all the time: a member of a 4-member
  run lost its first 120 rows that way. `CSVLoggerCallback` continues `progress.csv` after `--resume` without a
  header, in the keys of the first new result; when those differ from the file's header, every later row lands
  in the wrong columns.
  `ResultJsonLogger` and `ProgressCsvLogger` write both files straight into the run folder (local storage), a
  flushed line per result, appending to what is there under the file's own header; Tune's uploads never touch
  them. A resume cuts the rows after the checkpoint it continues from (`population.resume`); the checkpoint's own
  row, when a kill came between the checkpoint and its logging (PBT saves donors before the loggers run), is
  written back from the result the checkpoint recorded.
- PBT appends its exploit history (`pbt_global.txt`, `pbt_policy_<trial>.txt`) to the staging folder; after
  `--resume` that starts empty, and its upload replaced the history of the run before the resume.
  `restore_pbt_history` copies the run folder's history into the staging folder before the first append.
- Every result carries the member's latest evaluation (`eval/...`, for the table and the score), so TensorBoard drew
  each evaluation as a flat line until the next one. `TensorBoardLogger` writes `eval/...` only at the iteration
  that ran it: each point on its charts is one evaluation.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TextIO

import pyarrow.fs
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback
from ray.tune.result import EXPR_PROGRESS_FILE, EXPR_RESULT_FILE
from ray.tune.utils import flatten_dict
from ray.tune.utils.util import SafeFallbackEncoder

from population import result_keys as keys

PBT_HISTORY_PREFIX = "pbt_"


def run_folder_file(trial, name: str) -> Path:  # noqa: ANN001 -- a Tune Trial
    """The trial's log `name` in the run folder; in Tune's staging folder where the storage is not local."""
    storage = trial.storage
    folder = storage.trial_fs_path if storage.storage_filesystem.type_name == "local" else trial.local_path
    Path(folder).mkdir(parents=True, exist_ok=True)
    return Path(folder, name)


class ResultJsonLogger(JsonLoggerCallback):
    """`result.json`, a flushed line per result, appended in the run folder (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[object, TextIO] = {}
        self.failed: set[str] = set()  # trial ids that failed: Tune restores them from their last checkpoint

    def log_trial_start(self, trial) -> None:  # noqa: ANN001 -- Tune's signature
        self.update_config(trial, trial.config)  # params.json: the config after an exploit
        self.log_trial_end(trial)
        restored = trial.latest_checkpoint_result
        if trial.trial_id in self.failed and restored is not None:  # its rows after that checkpoint are redone
            cut_logs_after(Path(run_folder_file(trial, EXPR_RESULT_FILE).parent),
                           restored.metrics.get("training_iteration", 0), restored.metrics)
        self.failed.discard(trial.trial_id)
        self.files[trial] = open(run_folder_file(trial, EXPR_RESULT_FILE), "a")  # noqa: SIM115 -- closed at the end

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:  # noqa: ANN001 -- Tune's signature
        if trial not in self.files:
            self.log_trial_start(trial)
        self.files[trial].write(json.dumps(result, cls=SafeFallbackEncoder) + "\n")
        self.files[trial].flush()

    def log_trial_end(self, trial, failed: bool = False) -> None:  # noqa: ANN001 -- Tune's signature
        if failed:
            self.failed.add(trial.trial_id)
        file = self.files.pop(trial, None)
        if file is not None:
            file.close()


class TensorBoardLogger(TBXLoggerCallback):
    """Tune's TensorBoard logger, with the member's evaluation only at the iterations that ran one."""

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:  # noqa: ANN001 -- Tune's signature
        if not keys.ran_evaluation(result):
            result = {key: value for key, value in result.items() if key != keys.EVAL}
        super().log_trial_result(iteration, trial, result)


class ProgressCsvLogger(CSVLoggerCallback):
    """`progress.csv`, a flushed row per result, appended in the run folder under the file's own header."""

    def __init__(self) -> None:
        super().__init__()
        self.files: dict[object, TextIO] = {}
        self.writers: dict[object, csv.DictWriter] = {}

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:  # noqa: ANN001 -- Tune's signature
        row = progress_row(result)
        if trial not in self.files:
            path = run_folder_file(trial, EXPR_PROGRESS_FILE)
            header = None
            if path.exists() and path.stat().st_size > 0:
                with open(path, newline="") as existing:
                    header = next(csv.reader(existing), None)
            self.files[trial] = open(path, "a", newline="")  # noqa: SIM115 -- closed at the end
            self.writers[trial] = csv.DictWriter(self.files[trial], header or list(row), extrasaction="ignore")
            if header is None:
                self.writers[trial].writeheader()
        self.writers[trial].writerow(row)
        self.files[trial].flush()

    def log_trial_end(self, trial, failed: bool = False) -> None:  # noqa: ANN001 -- Tune's signature
        self.writers.pop(trial, None)
        file = self.files.pop(trial, None)
        if file is not None:
            file.close()


def cut_logs_after(trial_dir: Path, iteration: int, checkpoint_result: dict | None = None) -> int:
    """Make `result.json` and `progress.csv` end at `iteration`, the checkpoint a restore continues from.

    Drops the rows after the last row of `iteration` -- the rows of the iterations that a restore from that
    iteration's checkpoint trains again -- and any line cut short by a kill. Iteration 0 (no checkpoint: training
    starts over) drops every row. A file whose rows stop just before `iteration` gets that iteration's row from
    `checkpoint_result` (the result the checkpoint recorded): Tune's PBT saves a donor's checkpoint before the
    loggers see its result, so a kill can fall between the two. Returns the number of result.json rows dropped.
    """
    def cut(rows: list, iterations: list[int | None]) -> list:
        if iteration == 0:
            return []
        ends = [i for i, value in enumerate(iterations) if value == iteration]
        whole = [row for row, value in zip(rows, iterations, strict=True) if value is not None]
        return rows[: ends[-1] + 1] if ends else whole

    def missing_row(iterations: list[int | None]) -> bool:
        whole = [value for value in iterations if value is not None]
        return checkpoint_result is not None and iteration > 0 and (whole[-1] if whole else 0) == iteration - 1

    def replace(path: Path, text: str) -> None:
        staged = path.with_name(path.name + ".tmp")
        with open(staged, "w", newline="") as f:
            f.write(text)
        staged.replace(path)

    dropped = 0
    result_path = trial_dir / EXPR_RESULT_FILE
    if result_path.exists():
        lines = result_path.read_text().splitlines()
        iterations = [_json_iteration(line) for line in lines]
        kept = cut(lines, iterations)
        dropped = len(lines) - len(kept)
        if missing_row(iterations):
            trial_id = json.loads(kept[-1]).get("trial_id") if kept else None  # the checkpoint says "default"
            row = {**checkpoint_result, **({"trial_id": trial_id} if trial_id else {})}
            kept.append(json.dumps(row, cls=SafeFallbackEncoder))
        if kept != lines:
            replace(result_path, "".join(line + "\n" for line in kept))
    progress_path = trial_dir / EXPR_PROGRESS_FILE
    if progress_path.exists() and progress_path.stat().st_size > 0:
        with open(progress_path, newline="") as f:
            header, *rows = list(csv.reader(f))
        column = header.index("training_iteration") if "training_iteration" in header else None
        iterations = [_int(row[column]) if column is not None and len(row) == len(header) else None for row in rows]
        kept = cut(rows, iterations)
        if missing_row(iterations):
            flat = progress_row(checkpoint_result)
            kept.append([flat.get(key, "") for key in header])
        if kept != rows:
            text = io.StringIO(newline="")
            csv.writer(text).writerows([header, *kept])
            replace(progress_path, text.getvalue())
    return dropped


def progress_row(result: dict) -> dict:
    """A result as `progress.csv` holds it: flattened with `/`, without the config."""
    return flatten_dict({k: v for k, v in result.items() if k != "config"}, delimiter="/")


def _json_iteration(line: str) -> int | None:
    try:
        return int(json.loads(line)["training_iteration"])
    except (ValueError, KeyError, TypeError):
        return None


def _int(text: str) -> int | None:
    try:
        return int(float(text))
    except ValueError:
        return None


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
