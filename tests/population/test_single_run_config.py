"""`python -m population.run` refuses bad experiment files before Ray starts: one message, exit 2, no files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from population.config import ExperimentConfigError, load_experiment
from population.run import main

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "population.run", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("training:\n  per_module:\n    policy_7: {lr: 0.001}\n", "training.per_module"),
        ("training:\n  rollout_steps: 0\n", "training.rollout_steps"),
        ("training:\n  num_minibatches: -4\n", "training.num_minibatches"),
        ("simulator:\n  num_envs: 0\n", "simulator.num_envs"),
        ("run:\n  stop: {}\n", "run.stop"),
        ("rewards:\n  scales:\n    ocbb: 1.0\n", "rewards.scales.ocbb"),
        ("trainnig:\n  lr: 0.001\n", "trainnig"),
    ],
)
def test_invalid_file_fails_with_one_message_naming_the_field(tmp_path: Path, capsys, text: str, field: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    storage = tmp_path / "runs"
    assert main([str(config), "--storage", str(storage)]) == 2
    out, err = capsys.readouterr()
    assert field in err and out == ""
    assert len(err.strip().splitlines()) == 2  # "error: <file>:" and one line for the one problem
    assert not storage.exists()


def test_cli_exits_2_without_traceback_or_files(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("training:\n  per_module:\n    policy_7: {lr: 0.001}\n")
    done = run_cli(str(config), "--storage", str(tmp_path / "runs"), cwd=tmp_path)
    assert done.returncode == 2
    assert "training.per_module" in done.stderr and "policy_7" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_yaml_syntax_error_is_one_message(tmp_path: Path, capsys) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("training: [unclosed\n")
    assert main([str(config)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_dry_run_prints_the_resolved_experiment_and_writes_nothing(tmp_path: Path, capsys) -> None:
    assert main([str(REPO / "configs" / "single.yaml"), "--dry-run", "--storage", str(tmp_path / "out")]) == 0
    resolved = json.loads(capsys.readouterr().out)["experiment"]
    assert resolved["run"]["storage"] == str(tmp_path / "out")
    assert resolved["training"]["share_policy"] is False
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["single.yaml", "smoke.yaml", "pbt_smoke.yaml", "gpu.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    experiment = load_experiment(REPO / "configs" / name)
    assert experiment.training.policy_ids == ("policy_0", "policy_1")


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ExperimentConfigError, match="no such file"):
        load_experiment(tmp_path / "nope.yaml")


def test_gpu_config_puts_simulator_runner_and_learner_on_one_gpu() -> None:
    from mapush_rllib.learner import MAPushPPOLearner
    from population.run import build_algorithm_config

    config = build_algorithm_config(load_experiment(REPO / "configs" / "gpu.yaml"))
    assert config.env_config["sim"]["backend"] == "mujoco_warp" and config.env_config["sim"]["device"] == "cuda"
    assert config.num_env_runners == 0 and config.num_gpus_per_learner == 1
    assert config.learner_class is MAPushPPOLearner


def test_dashboard_moves_to_a_free_port_when_the_configured_one_is_taken(capsys):
    """A second run on the same machine must not die in ray.init because the first run's dashboard holds the port."""
    import socket

    from population.run import free_dashboard_port

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first_run:
        first_run.bind(("127.0.0.1", 0))
        first_run.listen()
        taken = first_run.getsockname()[1]
        port = free_dashboard_port(taken)
        assert port != taken and taken < port < taken + 20
        assert f"Port {taken} is taken" in capsys.readouterr().out
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", port))  # the port it chose is really free
