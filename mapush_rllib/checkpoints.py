"""Which checkpoints are complete: a manifest written by the trainable, checked by everyone who reads one.

Tune (2.60) copies a checkpoint into `checkpoint_<index>/` file by file, so a run killed during the copy leaves a
folder that looks like a checkpoint and is not; a full disk or a bad copy can leave one with damaged files. Every
checkpoint `MAPushPPO` writes holds `mapush_checkpoint.json` (`MANIFEST`): each file's size and SHA-256, and Tune's
result of the iteration it was taken at (what a resume needs to continue the counters). A checkpoint is complete
when every listed file is there with its size and hash; resume and evaluate use complete checkpoints only, the
newest first, and say why they pass over the others.

A checkpoint to share (a result in a repository, a policy to start other runs from) does not need the simulators'
state: `python -m mapush_rllib.checkpoints share <checkpoint> <folder>` copies one without it (`share`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "mapush_checkpoint.json"
MANIFEST_FORMAT = "mapush-checkpoint/1"
#: The Algorithm state file of an RLlib checkpoint, and its entry holding every simulator's task-schedule state.
ALGORITHM_STATE = "algorithm_state.pkl"
ENV_STATE_KEY = "mapush_env_state"
_CHECKPOINT_NAME = re.compile(r"checkpoint_(\d+)")


class CheckpointError(FileNotFoundError):
    """No usable checkpoint at the given path; the message says what was looked for, or what is damaged."""


@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint folder and what its manifest says about it."""

    path: Path
    result: dict  # Tune's result of the iteration the checkpoint was taken at

    @property
    def training_iteration(self) -> int:
        return int(self.result.get("training_iteration", 0))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: str | Path, result: dict) -> None:
    """Record every file under `directory` (size, SHA-256) and `result`; call after the checkpoint is written."""
    from ray.tune.utils.util import SafeFallbackEncoder  # Tune's own encoder of results (numpy, NaN)

    directory = Path(directory)
    files = {
        str(path.relative_to(directory)): [path.stat().st_size, _sha256(path)]
        for path in sorted(directory.rglob("*")) if path.is_file() and path.name != MANIFEST
    }
    manifest = {"format": MANIFEST_FORMAT, "result": result, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, cls=SafeFallbackEncoder))


def verify(directory: str | Path) -> Checkpoint:
    """The checkpoint at `directory` if it is complete; raises CheckpointError naming what is missing or damaged."""
    directory = Path(directory)
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
        files, result = manifest["files"], manifest["result"]
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: incomplete (no {MANIFEST}: its writing was cut short)") from None
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{directory}: damaged {MANIFEST} ({error})") from None
    for name, (size, sha256) in files.items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{directory}: incomplete ({name} is missing)")
        if path.stat().st_size != size:
            raise CheckpointError(f"{directory}: damaged ({name} has {path.stat().st_size} bytes, not {size})")
        if _sha256(path) != sha256:
            raise CheckpointError(f"{directory}: damaged ({name} does not match its SHA-256)")
    return Checkpoint(directory, result)


def recorded_result(directory: str | Path) -> dict | None:
    """The result a checkpoint's manifest records (None without a readable manifest); its files are not checked."""
    try:
        return json.loads((Path(directory) / MANIFEST).read_text())["result"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def checkpoint_index(directory: str | Path) -> int | None:
    """Tune's index of a `checkpoint_<index>` folder; None for any other name."""
    match = _CHECKPOINT_NAME.fullmatch(Path(directory).name)
    return int(match[1]) if match else None


def trial_checkpoints(trial_dir: str | Path) -> list[Path]:
    """The `checkpoint_<index>` folders of a trial, newest (highest index) first."""
    found = [p for p in Path(trial_dir).iterdir() if p.is_dir() and checkpoint_index(p) is not None]
    return sorted(found, key=checkpoint_index, reverse=True)


def newest_complete(trial_dir: str | Path) -> tuple[Checkpoint | None, list[str]]:
    """(the trial's newest complete checkpoint or None, why each newer folder was passed over)."""
    passed_over: list[str] = []
    for directory in trial_checkpoints(trial_dir):
        try:
            return verify(directory), passed_over
        except CheckpointError as error:
            passed_over.append(str(error))
    return None, passed_over


def share(source: str | Path, destination: str | Path) -> Checkpoint:
    """Copy the checkpoint at `source` to the new folder `destination` without its simulators' state, and return
    the copy (complete, with its own manifest).

    Why: that state (each env's task schedule, curriculum and random stream, ~1.3 kB per env: 5.5 MB at 4,096
    envs) is what `--resume` needs to continue a run, not what evaluating the policies or starting a run from them
    (`run.initial_policy`) needs; without it a checkpoint is a few hundred kB. Weights, optimizer state and
    counters are kept.
    """
    source, destination = Path(source), Path(destination)
    if not source.is_dir():
        raise CheckpointError(f"{source} does not exist (name a checkpoint_<index> folder)")
    result = verify(source).result if (source / MANIFEST).exists() else {}
    if not (source / ALGORITHM_STATE).is_file():
        raise CheckpointError(f"{source}: not an algorithm checkpoint (no {ALGORITHM_STATE})")
    if destination.exists():
        raise FileExistsError(f"{destination} exists: name a new folder for the copy")
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(MANIFEST))
    with open(destination / ALGORITHM_STATE, "rb") as f:
        state = pickle.load(f)
    state.pop(ENV_STATE_KEY, None)
    with open(destination / ALGORITHM_STATE, "wb") as f:
        pickle.dump(state, f)
    write_manifest(destination, result)
    return verify(destination)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mapush_rllib.checkpoints", description=share.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    share_command = commands.add_parser("share", help="copy a checkpoint without its simulators' state")
    share_command.add_argument("checkpoint", help="a checkpoint_<index> folder")
    share_command.add_argument("destination", help="a new folder for the copy")
    args = parser.parse_args(argv)
    try:
        copy = share(args.checkpoint, args.destination)
    except (CheckpointError, FileExistsError) as error:
        parser.exit(2, f"error: {error}\n")
    size = sum(path.stat().st_size for path in copy.path.rglob("*") if path.is_file())
    print(f"{copy.path}: {size / 1e3:.0f} kB, iteration {copy.training_iteration}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
