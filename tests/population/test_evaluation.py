"""The member's own evaluation: in every result, at the configured iterations, equal to `evaluate` on the
checkpoint of the same iteration (one code path, bit-equal on CPU)."""

from __future__ import annotations

import json
import logging
import math
import pickle
from pathlib import Path

import pytest
import ray

from mapush_rllib.checkpoints import ALGORITHM_STATE, ENV_STATE_KEY, share
from mapush_rllib.evaluate import main as evaluate
from population.config import load_experiment
from population.run import build_algorithm_config

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
EVAL_ENVS, EVAL_SEED = 6, 4242


def evaluated_by_the_cli(checkpoint: str, capsys) -> dict:
    """`python -m mapush_rllib.evaluate --policy <checkpoint>` on the member's evaluation episodes, as JSON."""
    capsys.readouterr()
    assert evaluate(["--policy", checkpoint, "--num-envs", str(EVAL_ENVS), "--seed", str(EVAL_SEED), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def assert_same_evaluation(cli: dict, evaluation: dict) -> None:
    """The CLI's flat metrics equal a result's nested `eval` section, exactly."""
    for key in ("success_rate", "finish_time_s", "task_progress", "freeloading_index", "contribution_balance"):
        assert cli[key] == evaluation[key], key
    for agent in ("agent_0", "agent_1"):
        assert cli[f"contribution/{agent}/task_progress"] == evaluation["contribution"][agent]["task_progress"]


def test_the_members_evaluation_equals_evaluate_on_its_checkpoint(tmp_path: Path, capsys) -> None:
    experiment = load_experiment(REPO / "configs" / "smoke.yaml", overrides=[
        f"evaluation.num_envs={EVAL_ENVS}", f"evaluation.seed={EVAL_SEED}", "evaluation.interval_iterations=2",
        "run.stop.training_iterations=3", "task.episode_length_s=2.0",
    ])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        algo = build_algorithm_config(experiment).build_algo()
        first = algo.train()
        assert math.isnan(first["eval"]["success_rate"]), "no evaluation before the first one is due"
        second = algo.train()  # iteration 2: due
        evaluation = second["eval"]
        assert evaluation["iteration"] == 2 and evaluation["episodes"] == EVAL_ENVS
        assert 0 <= evaluation["contribution_balance"] <= 1 and evaluation["time_s"] > 0
        assert second["pbt"]["full_task_success"] == evaluation["success_rate"]  # the score reads the evaluation
        checkpoint = algo.save_to_path(str(tmp_path / "checkpoint"))
        third = algo.train()  # iteration 3 reaches the stop condition: evaluated again
        assert third["eval"]["iteration"] == 3
        algo.stop()
    finally:
        ray.shutdown()
    cli = evaluated_by_the_cli(checkpoint, capsys)
    assert_same_evaluation(cli, evaluation)

    # The copy to share: no simulator state, smaller, complete, and the same team on the same episodes.
    shared = share(checkpoint, tmp_path / "shared").path
    with open(shared / ALGORITHM_STATE, "rb") as f:
        assert ENV_STATE_KEY not in pickle.load(f)
    with open(Path(checkpoint) / ALGORITHM_STATE, "rb") as f:
        assert pickle.load(f)[ENV_STATE_KEY]
    size = {folder: sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
            for folder in (checkpoint, shared)}
    assert size[shared] < size[checkpoint]
    with pytest.raises(FileExistsError, match="name a new folder"):
        share(checkpoint, shared)
    assert evaluate(["--policy", str(shared), "--num-envs", str(EVAL_ENVS), "--seed", str(EVAL_SEED), "--json"]) == 0
    from_shared = json.loads(capsys.readouterr().out)
    assert from_shared.pop("checkpoint") == str(shared)
    assert from_shared.pop("wall_time_s") > 0
    assert from_shared == {key: value for key, value in cli.items() if key not in ("checkpoint", "wall_time_s")}


def test_the_asynchronous_evaluation_judges_the_handed_over_policies_as_evaluate_does(tmp_path: Path, capsys,
                                                                                       caplog) -> None:
    """`evaluation.asynchronous`: the policies of iteration D - lead are evaluated in a process beside the member and
    reported at D, equal to `evaluate` on that iteration's checkpoint; a restore drops the pending evaluation, a
    dead process is replaced, and both times the decision still gets an evaluation (of the weights it has then)."""
    experiment = load_experiment(REPO / "configs" / "smoke.yaml", overrides=[
        f"evaluation.num_envs={EVAL_ENVS}", f"evaluation.seed={EVAL_SEED}", "evaluation.interval_iterations=2",
        "evaluation.asynchronous=true", "evaluation.lead_iterations=1", "run.checkpoint_every_iterations=1",
        "run.stop.training_iterations=7", "task.episode_length_s=2.0",
    ])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        algo = build_algorithm_config(experiment).build_algo()
        algo.train()  # iteration 1: its policies are handed over
        handed_over = algo.save_to_path(str(tmp_path / "iteration_1"))
        second = algo.train()["eval"]  # iteration 2: reports them
        assert (second["iteration"], second["weights_iteration"], second["episodes"]) == (2, 1, EVAL_ENVS)
        assert 0 < second["time_s"] and 0 < second["protocol_time_s"]

        algo.train()  # iteration 3: hands over its policies ...
        algo.restore_from_path(handed_over)  # ... which this member no longer has after a restore (to iteration 1)
        after_restore = algo.train()["eval"]  # iteration 2 again: nothing of its own pending, evaluated in process
        assert (after_restore["iteration"], after_restore["weights_iteration"]) == (2, 2)

        algo.train()  # iteration 3: handed over; then its process dies
        algo.evaluation_process._process.kill()
        algo.evaluation_process._process.join()
        with caplog.at_level(logging.WARNING, logger="mapush_rllib.evaluation"):
            after_death = algo.train()["eval"]  # iteration 4
        assert (after_death["iteration"], after_death["weights_iteration"]) == (4, 4)
        assert "evaluation process ended" in caplog.text
        algo.train()  # iteration 5 hands over to a new process
        assert algo.evaluation_process.alive and algo.evaluation_process.pending == 5
        sixth = algo.train()["eval"]
        assert (sixth["iteration"], sixth["weights_iteration"]) == (6, 5)
        last = algo.train()["eval"]  # iteration 7 meets the stop condition: the current policies, in process
        assert (last["iteration"], last["weights_iteration"]) == (7, 7)
        process = algo.evaluation_process._process
        algo.stop()
        assert not process.is_alive(), "the evaluation process ends with its member"
    finally:
        ray.shutdown()
    assert_same_evaluation(evaluated_by_the_cli(handed_over, capsys), second)
