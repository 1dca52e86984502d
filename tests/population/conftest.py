"""Helpers for tests that run `python -m population.run` as a user would: a subprocess on a real local Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml

from ..processes import kill_group

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def write_config(base: str, tmp_path: Path, **sections: dict) -> Path:
    """configs/<base> with some sections updated (deep-merged), written to tmp_path."""
    data = yaml.safe_load((REPO / "configs" / base).read_text())

    def merge(into: dict, update: dict) -> None:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(data, sections)
    path = tmp_path / base
    path.write_text(yaml.safe_dump(data))
    return path


def start_run(*args: str) -> subprocess.Popen:
    """`python -m population.run ARGS` in its own process group (so Ray's helpers can be killed with it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "population.run", *args], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def read_until(process: subprocess.Popen, predicate, log: list[str]) -> str | None:
    """Read the process's output line by line (blocking) until `predicate(line)`; None if it exits first."""
    for line in process.stdout:
        log.append(line)
        if predicate(line):
            return line
    return None


def finish(process: subprocess.Popen, log: list[str], timeout: float = 900) -> int:
    """Wait for the run to end, collecting its output; then clean up its process group."""
    try:
        rest, _ = process.communicate(timeout=timeout)
        log.append(rest)
        return process.returncode
    finally:
        kill_group(process)


def summary_of(log: list[str]) -> dict:
    """The JSON summary `population.run` prints last."""
    lines = [line for line in "".join(log).splitlines() if line.startswith('{"experiment_dir"')]
    assert lines, "".join(log)[-3000:]
    return json.loads(lines[-1])


def result_rows(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]


def trial_dirs(experiment_dir: Path) -> Iterator[Path]:
    return iter(sorted(p for p in experiment_dir.iterdir() if (p / "result.json").exists()))
