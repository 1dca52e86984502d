"""What a long run survives: the driver SIGKILLed mid-experiment and resumed, and a member's simulator dying.

Both drive `python -m population.run` as a user would, in its own process group, and wait on its output (never
on timers); afterwards the whole group is killed, Ray helpers included.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from mapush_rllib.checkpoint_policy import load_checkpoint_policy
from mapush_rllib.checkpoints import verify

from ..processes import kill_group
from .conftest import ENV, REPO, finish, read_until, result_rows, start_run, summary_of, trial_dirs, write_config
from .test_pbt import assert_live_values_equal_config, checkpoint_digests

pytestmark = pytest.mark.ray
CHECKPOINT_LINE = "[checkpoint] member "


def http_status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_sigkilled_driver_resumes_where_it_stopped(tmp_path: Path) -> None:
    config = write_config("pbt_smoke.yaml", tmp_path, run={"stop": {"training_iterations": 10}, "dashboard": True})
    storage = tmp_path / "runs"
    log: list[str] = []
    process = start_run(str(config), "--storage", str(storage))
    try:
        # The dashboard starts with the run and its URL is printed.
        line = read_until(process, lambda text: "Ray dashboard: http" in text, log)
        assert line is not None, "".join(log)[-3000:]
        url = re.search(r"(http://[\d.:]+)", line).group(1)
        assert http_status(url) == 200
        token = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "get-auth-token"], env=ENV,
                               capture_output=True, text=True, timeout=60).stdout.strip()
        assert http_status(f"{url}/api/version") == 401, "token authentication is on"
        assert http_status(f"{url}/api/version", token) == 200, "the printed recipe (ray get-auth-token) works"

        def every_member_has_two_checkpoints(text: str) -> bool:
            if CHECKPOINT_LINE not in text:
                return False
            runs = list(storage.glob("pbt_smoke_*"))
            members = list(trial_dirs(runs[0])) if runs else []
            history = runs[0] / "pbt_global.txt" if runs else None  # an exploit has reached the run folder
            return (len(members) == 3 and all(len(list(m.glob("checkpoint_*"))) >= 2 for m in members)
                    and history.exists() and history.read_text().strip() != "")

        assert read_until(process, every_member_has_two_checkpoints, log), "".join(log)[-3000:]
    finally:
        kill_group(process)  # SIGKILL: no shutdown hooks, no final checkpoint

    (experiment_dir,) = storage.glob("pbt_smoke_*")
    history = experiment_dir / "pbt_global.txt"
    exploits_before = history.read_text().splitlines()
    assert exploits_before, "the run was killed after its first exploit"
    before = {}
    for directory in trial_dirs(experiment_dir):
        rows = result_rows(directory)
        before[directory.name] = {"rows": len(rows), "last": rows[-1],
                                  "iterations": [r["training_iteration"] for r in rows],
                                  "checkpoints": sorted(p.name for p in directory.glob("checkpoint_*"))}

    digests_before = set().union(*(checkpoint_digests(d) for d in trial_dirs(experiment_dir)))
    log = []
    resumed = start_run(str(config), "--storage", str(storage), "--resume")
    assert finish(resumed, log) == 0, "".join(log)[-4000:]
    text = "".join(log)
    assert f"Resuming {experiment_dir}" in text
    assert Path(summary_of(log)["experiment_dir"]) == experiment_dir, "the same experiment, not a new one"

    exploits_after = history.read_text().splitlines() if history.exists() else []
    assert exploits_after[:len(exploits_before)] == exploits_before, "PBT's exploit history survives --resume"
    for directory in trial_dirs(experiment_dir):
        old = before[directory.name]
        rows = result_rows(directory)
        assert rows[-1]["training_iteration"] == 10, [r["training_iteration"] for r in rows]  # finished, not over
        with open(directory / "progress.csv", newline="") as f:  # continued in the columns of its header
            progress = list(csv.DictReader(f))
        assert [int(row["training_iteration"]) for row in progress] == [row["training_iteration"] for row in rows]
        assert [row["trial_id"] for row in progress] == [row["trial_id"] for row in rows]
        # the member continues from the checkpoint the resume names; the rows after that checkpoint's were cut
        resumed_at = int(re.search(rf"{directory.name}: continues from checkpoint_\d+ \(iteration (\d+)\)",
                                   text)[1])
        kept_rows = max(i for i, it in enumerate(old["iterations"]) if it == resumed_at) + 1
        assert [row["training_iteration"] for row in rows[:kept_rows]] == old["iterations"][:kept_rows]
        if kept_rows == len(rows):  # it had finished before the kill: nothing to continue
            continue
        first_after = rows[kept_rows]
        assert first_after["training_iteration"] == resumed_at + 1
        assert first_after["training_iteration"] > 2, "continued from a checkpoint, not from scratch"
        assert sum(row["training_iteration"] == 1 for row in rows) == 1, "never restarted from iteration 1"
        for row in rows[kept_rows:]:
            assert_live_values_equal_config(row)
        # The curriculum came back exactly as one of the member's checkpoints holds it (a member that copied
        # another after the resume may hold that donor's instead, so any checkpoint of the run counts; retention
        # may have deleted it since).
        restored = first_after["restored_env_state_digest"]
        assert restored in digests_before | set().union(*(checkpoint_digests(d) for d in trial_dirs(experiment_dir)))
        kept = sorted(p.name for p in directory.glob("checkpoint_*"))
        assert len(kept) <= 10, "run.checkpoints_to_keep (5 by default): the newest 5 and the best 5"
        for checkpoint in old["checkpoints"]:  # none lost or corrupt: each is kept, or older than the newest 5
            path = directory / checkpoint
            if not path.exists():
                assert checkpoint < kept[-5:][0], f"{checkpoint} is gone while older ones are kept: {kept}"
                continue
            verify(path)
            assert json.loads((path / "rllib_checkpoint.json").read_text())["ray_version"]
            with open(path / "algorithm_state.pkl", "rb") as f:
                state = pickle.load(f)
            assert state["training_iteration"] >= 1 and "mapush_env_state" in state
            policy, _ = load_checkpoint_policy(str(path))
            actions = policy(torch.zeros(3, 2, 8), torch.full((3,), 1.2))
            assert actions.shape == (3, 2, 3) and torch.isfinite(actions).all()


def test_a_member_whose_simulator_dies_is_restored_and_the_run_continues(tmp_path: Path) -> None:
    """A genuine failure: the member's simulator-server process is SIGKILLed mid-run. The trial raises with the
    server's message, Tune restores it from its last checkpoint (run.max_failures), and the run finishes."""
    config = write_config("smoke.yaml", tmp_path, simulator={"backend": "server"},
                          run={"stop": {"training_iterations": 6}, "max_failures": 2})
    log: list[str] = []
    process = start_run(str(config), "--storage", str(tmp_path / "runs"))
    try:
        assert read_until(process, lambda text: CHECKPOINT_LINE in text, log), "".join(log)[-3000:]
        listing = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True, text=True).stdout
        servers = [int(line.split()[0]) for line in listing.splitlines()
                   if "mapush_rllib.sim.server" in line and int(line.split()[1]) == process.pid]
        assert servers, "the member's simulator server runs in the run's session"
        os.kill(servers[0], signal.SIGKILL)
        status = finish(process, log)
    finally:
        kill_group(process)
    text = "".join(log)
    assert status == 0, text[-4000:]
    assert "SimulatorServerError" in text and "simulator server" in text, "the failure is reported, not swallowed"
    (member,) = summary_of(log)["members"]
    rows = result_rows(Path(member["trial_dir"]))
    assert rows[-1]["training_iteration"] == 6
    assert sum(row["training_iteration"] == 1 for row in rows) == 1, "restored from a checkpoint, not from scratch"
    assert len({row["pid"] for row in rows}) >= 2, "a new trial process took over after the failure"
    iterations = [row["training_iteration"] for row in rows]
    assert iterations == sorted(iterations), "it resumed from its last checkpoint and went on"


def test_ctrl_c_says_how_to_continue_and_that_command_finishes_the_run(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) stops Tune gracefully; the run then says so (exit 130, a shell's code for it) with the
    command that continues it, instead of Tune's `Tuner.restore(...)` advice, and that command finishes the run."""
    config = write_config("smoke.yaml", tmp_path, run={"stop": {"training_iterations": 30}})
    log: list[str] = []
    process = start_run(str(config), "--storage", str(tmp_path / "runs"))
    try:
        assert read_until(process, lambda text: CHECKPOINT_LINE in text, log), "".join(log)[-3000:]
        process.send_signal(signal.SIGINT)
        status = finish(process, log)
    finally:
        kill_group(process)
    text = "".join(log)
    assert status == 130, text[-3000:]
    assert "Tuner.restore" not in text and "Checkpoint successfully created" not in text
    command = text.split("interrupted: member 0 stopped before run.stop")[1].split("Continue with:\n")[1]
    command = command.splitlines()[0].split()
    assert command[:4] == ["python", "-m", "population.run", str(config)] and command[-1] == "--resume", command
    (trial,) = trial_dirs(next((tmp_path / "runs").glob("smoke_*")))
    assert max(row["training_iteration"] for row in result_rows(trial)) < 30
    resumed = subprocess.run([sys.executable, *command[1:]], cwd=REPO, env=ENV, capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [row["training_iteration"] for row in result_rows(trial)][-1] == 30


def test_ctrl_c_before_the_first_result_is_an_interruption_too(tmp_path: Path) -> None:
    config = write_config("smoke.yaml", tmp_path, run={"stop": {"training_iterations": 30}})
    log: list[str] = []
    process = start_run(str(config), "--storage", str(tmp_path / "runs"))
    try:
        assert read_until(process, lambda text: text.startswith("Experiment folder:"), log), "".join(log)[-3000:]
        process.send_signal(signal.SIGINT)
        status = finish(process, log)
    finally:
        kill_group(process)
    text = "".join(log)
    assert status == 130 and "Traceback" not in text, text[-3000:]
    if "interrupted before the first checkpoint" in text:  # before Tune's handler: nothing to continue
        assert not list((tmp_path / "runs").glob("smoke_*")), "no empty run folder left behind"
    else:
        assert "interrupted: member 0 stopped before run.stop" in text and "Continue with:" in text, text[-3000:]
