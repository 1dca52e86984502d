"""End to end: `python -m population.run configs/smoke.yaml` trains on a real local Ray with Tune, writes
checkpoints, and a new process loads the newest checkpoint's policies and evaluates them."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mapush_rllib.checkpoint_policy import find_checkpoint, load_checkpoint_policy

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    storage = tmp_path_factory.mktemp("runs")
    done = subprocess.run(
        [sys.executable, "-m", "population.run", str(REPO / "configs" / "smoke.yaml"), "--storage", str(storage)],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    (member,) = summary["members"]
    assert member["training_iteration"] == 4
    assert Path(summary["experiment_dir"]).parent == storage
    return Path(member["trial_dir"])


def test_trial_directory_has_results_tensorboard_and_checkpoints(run_dir: Path) -> None:
    assert run_dir.parent.name.startswith("smoke_"), "one folder per run: <run.name>_<date>"
    assert (run_dir.parent / "experiment.yaml").exists()
    assert sorted(p.name for p in run_dir.glob("checkpoint_*")) == ["checkpoint_000000", "checkpoint_000001"]
    assert list(run_dir.glob("events.out.tfevents.*"))
    with open(run_dir / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["training_iteration"]) for row in rows] == [1, 2, 3, 4]
    last = rows[-1]
    for column in (
        "env_runners/mapush/success_rate", "env_runners/mapush/finish_time_s",
        "env_runners/mapush/collaboration_degree", "env_runners/mapush/freeloading_index",
        "env_runners/mapush/engagement/agent_1", "env_runners/mapush/reward/ocb/agent_0",
        "live_settings/policy_0/entropy_coeff", "live_settings/policy_1/lr",
        "live_settings/reward_scales/agent_1/push", "env_runners/mapush/task_progress", "pbt/score",
        "curriculum/level_mean", "curriculum/level_hist/0", "curriculum/full_task_episodes",
        "curriculum/resumed/level_mean",
    ):
        assert last[column] != "", column
    assert float(last["env_runners/mapush/window_episodes"]) > 0


def test_tensorboard_draws_each_evaluation_once_against_env_steps(run_dir: Path) -> None:
    """Every result carries the latest evaluation (for the table); TensorBoard gets it only where it ran, so a
    chart's points are evaluations, not a flat line repeated at each iteration. The x-axis is env steps."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = [json.loads(line) for line in (run_dir / "result.json").read_text().splitlines()]
    evaluated = [row["timesteps_total"] for row in rows if row["eval"]["iteration"] == row["training_iteration"]]
    assert len(evaluated) == 2 < len(rows)
    events = EventAccumulator(str(run_dir)).Reload()
    assert [e.step for e in events.Scalars("ray/tune/eval/success_rate")] == evaluated
    assert [e.step for e in events.Scalars("ray/tune/pbt/score")] == [row["timesteps_total"] for row in rows]


def test_checkpoint_loads_from_a_relative_path(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(run_dir.parent)
    policy, info = load_checkpoint_policy(run_dir.name)  # as `evaluate --policy runs/single/` passes it
    assert info["checkpoint"] == str(run_dir / "checkpoint_000001")
    assert set(policy.modules) == {"policy_0", "policy_1"}


def test_training_changed_two_different_policies(run_dir: Path) -> None:
    early, _ = load_checkpoint_policy(str(run_dir / "checkpoint_000000"))
    late, info = load_checkpoint_policy(str(run_dir))
    assert info["checkpoint"] == str(run_dir / "checkpoint_000001") and info["training_iteration"] == 4
    assert info["agent_modules"] == {"agent_0": "policy_0", "agent_1": "policy_1"}
    for module_id in ("policy_0", "policy_1"):
        before, after = early.modules[module_id].state_dict(), late.modules[module_id].state_dict()
        assert any(not torch.equal(before[k], after[k]) for k in after), module_id
    weights = {m: late.modules[m].actor[0].weight for m in ("policy_0", "policy_1")}
    assert not torch.equal(weights["policy_0"], weights["policy_1"])
    obs = torch.randn(5, 2, 8)
    actions = late(obs, torch.full((5,), 1.2))
    assert actions.shape == (5, 2, 3) and actions.abs().max() <= 1.0
    assert torch.equal(actions, late(obs, torch.full((5,), 1.2)))  # deterministic


def test_new_process_evaluates_the_newest_checkpoint(run_dir: Path, tmp_path: Path) -> None:
    gif = tmp_path / "rollout.gif"
    done = subprocess.run(
        [sys.executable, "-m", "mapush_rllib.evaluate", "--policy", str(run_dir.parent), "--num-envs", "4",
         "--config", str(REPO / "configs" / "smoke.yaml"), "--json", "--render", str(gif), "--render-envs", "2"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["policy"] == "checkpoint"
    assert result["checkpoint"] == str(find_checkpoint(run_dir))
    assert result["num_episodes"] == 4 and 0.0 <= result["success_rate"] <= 1.0
    assert gif.stat().st_size > 0


def test_a_path_without_checkpoints_is_one_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mapush_rllib.evaluate", "--policy", str(tmp_path), "--json"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2 and "no complete checkpoint" in done.stderr and "Traceback" not in done.stderr


def test_kept_checkpoints_are_the_newest_and_the_best_by_their_own_evaluation(tmp_path: Path) -> None:
    """`run.checkpoints_to_keep`: the newest K (what --resume and a PBT copy take) and the best K by their own
    evaluation (an iteration without one is not judged by an earlier evaluation's score); the
    run's summary names the best one and what its evaluation measured."""
    storage = tmp_path / "runs"
    settings = ["run.stop.training_iterations=8", "run.checkpoint_every_iterations=1", "run.checkpoints_to_keep=2",
                "evaluation.interval_iterations=2"]
    done = subprocess.run(
        [sys.executable, "-m", "population.run", str(REPO / "configs" / "smoke.yaml"), "--storage", str(storage),
         *(arg for setting in settings for arg in ("--set", setting))],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (member,) = json.loads(done.stdout.strip().splitlines()[-1])["members"]
    with open(Path(member["trial_dir"]) / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    evaluated = {int(row["training_iteration"]): float(row["pbt/score"]) for row in rows  # its own evaluation's
                 if row["eval/iteration"] and float(row["eval/iteration"]) == int(row["training_iteration"])}
    assert sorted(evaluated) == [2, 4, 6, 8], "every evaluation interval"
    kept = {
        json.loads((path / "mapush_checkpoint.json").read_text())["result"]["training_iteration"]: path
        for path in Path(member["trial_dir"]).glob("checkpoint_*")
    }
    best_two = sorted(evaluated, key=lambda iteration: (evaluated[iteration], iteration))[-2:]
    assert set(kept) == {7, 8, *best_two}, (kept, evaluated)
    best = best_two[-1]
    assert member["best_checkpoint"] == str(kept[best])
    assert member["best_checkpoint_iteration"] == best
    assert member["best_checkpoint_score"] == pytest.approx(evaluated[best])
    assert 0.0 <= member["best_checkpoint_eval_success_rate"] <= 1.0
