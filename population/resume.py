"""Run folders: made once, used by one process at a time, and resumed from what is really on disk.

- `new_run_dir` makes `<storage>/<name>_<date>` atomically: two runs started in the same second get two folders.
- `RunLock` holds an exclusive lock on a run folder while a process trains in it; `--resume` of a run that is still
  training stops with a message instead of training the same members from two processes. The operating system
  drops the lock when the process ends, however it ends (`kill -9` included).
- `find_run` finds the newest run of exactly `<name>` (not `<name>_other_<date>`).
- `changed_settings` compares the experiment now with the one the run was started with: a resumed run keeps its
  experiment, and only where the run's files are written and watched may differ (`RESUMABLE_CHANGES`).
- `recover` makes every member continue from its newest *complete* checkpoint (`mapush_rllib.checkpoints`): Tune
  saves its experiment state now and then, so after a kill it can miss the newest checkpoints or list one whose
  writing was cut short. Folders passed over are renamed `passed_over_checkpoint_<index>` (kept, never reused), and
  each member's `result.json` / `progress.csv` are cut after the row of the checkpoint it continues from: those
  iterations are trained again, and their rows written once.
"""

from __future__ import annotations

import copy
import datetime
import fcntl
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mapush_rllib.checkpoints import CheckpointError, checkpoint_index, trial_checkpoints, verify
from mapush_rllib.ray_compat import record_trial_checkpoints, recorded_trial_folders, repair_experiment_state
from population.tune_logs import cut_logs_after

EXPERIMENT_FILE = "experiment.yaml"
POPULATION_FILE = "population.json"  # the mutations and each member's starting values (the report reads it)
LOCK_FILE = ".population_run.lock"
PASSED_OVER_PREFIX = "passed_over_"
_STAMP = r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}(?:_\d+)?"
#: Settings that may differ on `--resume`: where the run is written and how it is watched.
RESUMABLE_CHANGES = ("run.storage", "run.dashboard", "run.dashboard_port", "run.resources.ray_num_cpus")


class RunFolderError(RuntimeError):
    """A run folder cannot be used as asked; the message says why and what to do."""


def member_dirname(trial) -> str:  # noqa: ANN001 -- a Tune Trial
    """`member_<k>_<trial id>`: TensorBoard's run names and the run folder lead with the member."""
    return f"member_{trial.config.get('member', 0)}_{trial.trial_id}"


def member_index(trial_path: str | Path) -> int | None:
    """The member of a trial folder that `member_dirname` named."""
    match = re.match(r"member_(\d+)(?:_|$)", Path(trial_path).name)  # also a packed copy, `member_<k>`
    return int(match.group(1)) if match else None


def new_run_dir(storage: Path, name: str) -> Path:
    """Make and return `<storage>/<name>_<date>[_<n>]`; the first free name, taken atomically."""
    stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    storage.mkdir(parents=True, exist_ok=True)
    for suffix in range(10_000):
        path = storage / (f"{name}_{stamp}" + (f"_{suffix}" if suffix else ""))
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunFolderError(f"{storage}: no free run folder name for {name}_{stamp}")


def find_run(storage: Path, name: str) -> Path | None:
    """The newest run of experiment `name` under `storage` (folders `<name>_<date>[_<n>]` with an experiment file)."""
    pattern = re.compile(rf"{re.escape(name)}_({_STAMP})")
    runs = []
    for path in storage.glob(f"{name}_*"):
        match = pattern.fullmatch(path.name)
        if match and (path / EXPERIMENT_FILE).exists():
            date, _, suffix = match[1][:19], match[1][19:], match[1][20:]
            runs.append(((date, int(suffix) if suffix else 0), path))
    return max(runs)[1] if runs else None


class RunLock:
    """An exclusive lock on a run folder for the life of this process (released by the OS however it ends)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self.file = open(self.path, "a+")  # noqa: SIM115 -- held until release()
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise RunFolderError(
                f"{run_dir} is in use by a running population.run ({holder}); wait for it to end or stop it "
                "before --resume"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        self.file.flush()

    def release(self) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


#: Settings added since runs were first saved, with the value a run saved without one ran with: a resume compares
#: against that value (before `pbt.shared_reward_terms`, PBT mutated own_push per agent; before joint_push, there
#: was no such pay).
ADDED_SETTINGS = {"pbt.shared_reward_terms": [], "rewards.scales.joint_push": 0.0}


def with_added_settings(saved: dict) -> dict:
    """`saved` (an experiment file's dict) with each added setting it lacks, in the sections the run has."""
    saved = copy.deepcopy(saved)
    for path, value in ADDED_SETTINGS.items():
        *sections, name = path.split(".")
        node = saved
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(name, copy.deepcopy(value))
    return saved


def changed_settings(saved: dict, now: dict) -> list[str]:
    """`field: saved -> now` for every setting that differs between two experiments (as `model_dump` dicts)."""
    changes = []

    def walk(a: object, b: object, path: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                walk(a.get(key), b.get(key), f"{path}.{key}" if path else key)
        elif a != b and not path.startswith(RESUMABLE_CHANGES):
            changes.append(f"{path}: {a!r} in the run, {b!r} now")

    walk(saved, now, "")
    return changes


@dataclass
class MemberRecovery:
    """What `recover` found for one member (trial folder)."""

    trial: str
    checkpoint: Path | None  # the newest complete checkpoint, which the member continues from
    iteration: int
    passed_over: list[str] = field(default_factory=list)
    rows_dropped: int = 0

    def describe(self) -> str:
        where = (f"{self.checkpoint.name} (iteration {self.iteration})" if self.checkpoint
                 else "the start (no complete checkpoint)")
        lines = [f"  {self.trial}: continues from {where}"]
        lines += [f"    passed over {reason}" for reason in self.passed_over]
        if self.rows_dropped:
            lines.append(f"    {self.rows_dropped} result rows after iteration {self.iteration} dropped "
                         "(those iterations are trained again)")
        return "\n".join(lines)


def recover(run_dir: Path, finished: Callable[[dict], bool]) -> list[MemberRecovery]:
    """Point every member of the run at its newest complete checkpoint (see the module docstring); a member whose
    checkpoint already meets the stop condition (`finished(result)`) is done."""
    repaired = repair_experiment_state(run_dir)
    if repaired:
        print(repaired, flush=True)
    trials = recorded_trial_folders(run_dir)
    members, listed, last_index = [], {}, {}
    for trial in sorted(trials):
        trial_dir = run_dir / trial
        complete, passed_over = [], []
        folders = trial_checkpoints(trial_dir) if trial_dir.is_dir() else []
        for folder in folders:  # newest first
            try:
                complete.append(verify(folder))
            except CheckpointError as error:
                if complete:  # older than a complete one: retention deletes it in time; leave it
                    continue
                passed_over.append(str(error).replace(f"{folder}: ", f"{folder.name}: "))
                folder.rename(folder.with_name(PASSED_OVER_PREFIX + folder.name))
        newest = complete[0] if complete else None
        member = MemberRecovery(trial, newest.path if newest else None,
                                newest.training_iteration if newest else 0, passed_over)
        # every member is written back: even one whose checkpoints Tune recorded right may have been killed after
        # its last iteration and before Tune marked it finished
        listed[trial] = [(c.path, c.result) for c in reversed(complete)]
        last_index[trial] = max((checkpoint_index(f) for f in folders), default=-1)
        if trial_dir.is_dir():
            member.rows_dropped = cut_logs_after(trial_dir, member.iteration, newest.result if newest else None)
        members.append(member)
    if listed:
        record_trial_checkpoints(run_dir, listed, last_index, finished)
    return members
