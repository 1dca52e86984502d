"""The task is solvable on this simulator (scripted controller) and random behaviour is the floor."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.calculator import first_episodes
from mapush_rllib.task.metrics import summarize
from mapush_rllib.task.scripted import RandomPolicy, ScriptedPushPolicy
from mapush_rllib.task.vec_env import MAPushVecEnv


def calculator(policy, num_envs=100):
    env = MAPushVecEnv(SimConfig(num_envs=num_envs, num_threads=1), seed=0)
    stats, _ = first_episodes(env, policy)
    assert len(stats) == num_envs and sorted(stats.env_ids.tolist()) == list(range(num_envs))
    return summarize(stats)


def test_scripted_controller_solves_default_task():
    summary = calculator(ScriptedPushPolicy())
    assert summary["success_rate"] >= 0.8
    assert summary["finish_time_s"] < 15.0
    assert 0.0 < summary["collaboration_degree"] <= 1.0


def test_random_policy_stays_near_zero():
    summary = calculator(RandomPolicy(seed=0))
    assert summary["success_rate"] <= 0.05
    assert summary["finish_time_s"] > 19.0


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mapush_rllib.evaluate", *args], capture_output=True, text=True,
                          timeout=300)


def test_evaluate_cli_prints_one_json_object_and_renders(tmp_path):
    gif = tmp_path / "rollout.gif"
    done = run_cli("--policy", "scripted", "--num-envs", "6", "--seed", "0", "--json", "--render", str(gif),
                   "--render-envs", "2")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    for key in ("success_rate", "finish_time_s", "collaboration_degree", "freeloading_index"):
        assert key in summary
    assert summary["num_episodes"] == 6.0
    with Image.open(gif) as image:
        assert image.n_frames > 10 and image.size[0] > 300


@pytest.mark.parametrize("args, expected", [
    (["--policy", "no/such/checkpoint"], "--policy: 'no/such/checkpoint' is neither"),
    (["--num-envs", "0"], "--num-envs must be at least 1"),
])
def test_evaluate_cli_bad_input_is_one_clear_error(args, expected):
    done = run_cli(*args, "--json")
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
