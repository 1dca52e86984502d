"""The `curriculum:` section of the experiment file: checked with the task before Ray starts, carried to every
env runner through the env config, switched off with one setting. No Ray needed."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import torch

from curriculum import CurriculumScheduler
from mapush_rllib.env import make_vec_env
from population.config import load_experiment
from population.curriculum_hooks import nest, result_metrics
from population.run import build_algorithm_config, main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (  # levels out of order
            "curriculum:\n  levels:\n    - {target_distance_m: [1.3, 2.0], box_size_m: 1.0}\n"
            "    - {target_distance_m: [1.2, 2.0], box_size_m: 1.0}\n",
            "curriculum.levels.1.target_distance_m: low 1.2 is below levels.0's 1.3",
        ),
        (  # a target inside the success radius: the simulator's own rule
            "curriculum:\n  levels:\n    - {target_distance_m: [0.9, 1.5], box_size_m: 0.8}\n",
            "curriculum.levels.0.target_distance_m: [0.9, 1.5] is invalid",
        ),
        (  # valid alone, but not with this task: the start is now inside the success radius
            "task:\n  success_radius_m: 1.2\n",
            "curriculum.start.target_distance_m",
        ),
        (  # agents spawned inside the box
            "curriculum:\n  start: {target_distance_m: [1.1, 1.5], box_size_m: 1.0, spawn_radius_m: [0.8, 1.0]}\n",
            "curriculum.start.spawn_radius_m: [0.8, 1.0] is invalid",
        ),
        ("curriculum:\n  levels:\n    - {target_distance_m: [1.2, 2.0], box_size_m: 4.5}\n",
         "curriculum.levels.0.box_size_m"),
        ("curriculum:\n  promote_threshold: 0.8\n", "curriculum.promote_threshold: Extra inputs are not permitted"),
        ("curriculum:\n  min_episodes: 9\n", "curriculum.min_episodes: 9 exceeds window_episodes 4"),
    ],
)
def test_invalid_curriculum_is_one_error_naming_the_field_before_ray(tmp_path: Path, capsys, text, field) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    storage = tmp_path / "runs"
    assert main([str(config), "--storage", str(storage)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and field in err, err
    assert len(err.strip().splitlines()) == 2, err  # "error: <file>:" and one line naming the field
    assert not storage.exists()


def test_set_switches_the_curriculum_off_and_bad_overrides_are_one_error(tmp_path: Path, capsys) -> None:
    single = str(REPO / "configs" / "single.yaml")
    assert main([single, "--dry-run", "--set", "curriculum.enabled=false", "--set", "run.name=no_curriculum"]) == 0
    resolved = json.loads(capsys.readouterr().out)["experiment"]
    assert resolved["curriculum"]["enabled"] is False and resolved["run"]["name"] == "no_curriculum"
    assert resolved["simulator"]["num_envs"] == 256  # the rest of the file is kept

    assert main([single, "--dry-run", "--set", "curriculum.enabled"]) == 2
    assert "expected dotted.key=value" in capsys.readouterr().err
    assert main([single, "--dry-run", "--set", "curriculum.num_levels=1"]) == 2
    err = capsys.readouterr().err
    assert "curriculum.num_levels" in err and len(err.strip().splitlines()) == 2
    assert main([single, "--dry-run", "--set", "run.name.first=x"]) == 2
    assert "run.name is not a mapping" in capsys.readouterr().err


def test_shipped_configs_run_the_curriculum() -> None:
    assert load_experiment(REPO / "configs" / "single.yaml").curriculum.enabled
    smoke = load_experiment(REPO / "configs" / "smoke.yaml").curriculum
    assert smoke.enabled and smoke.initial_level_max > 0  # levels move within the smoke test's few iterations


@pytest.mark.parametrize("enabled", [True, False])
def test_every_env_runners_simulator_gets_its_own_scheduler(enabled: bool) -> None:
    experiment = load_experiment(
        REPO / "configs" / "smoke.yaml", overrides=["simulator.num_envs=8", f"curriculum.enabled={enabled}"]
    )
    env_config = build_algorithm_config(experiment).env_config
    env_config = pickle.loads(pickle.dumps(env_config))  # it crosses process boundaries (factory pickled by name)
    env = make_vec_env(env_config, env_id_offset=16)  # runner 2's envs
    schedule = env.task_schedule
    assert isinstance(schedule, CurriculumScheduler)
    assert schedule.env_id_offset == 16 and schedule.seed == experiment.run.seed
    assert schedule.num_levels == experiment.curriculum.num_levels
    is_eval = schedule.is_eval
    assert is_eval.tolist() == [g % 8 == 7 for g in range(16, 24)]  # eval_fraction 1/8: every 8th global id
    full_task = torch.isclose(env.episode_box_size, torch.tensor(1.2))
    if enabled:  # training envs start at levels 0..3 (smaller boxes below the top level); the eval slice plays MAPush
        assert (schedule.levels[~is_eval] >= 0).all() and (schedule.levels[is_eval] == -1).all()
        assert full_task[is_eval].all() and not full_task[~is_eval].all()
    else:
        assert (schedule.levels == -1).all() and full_task.all()


def test_result_metrics_have_every_key_from_the_start(make_scheduler) -> None:
    scheduler = make_scheduler(num_levels=3, eval_fraction=0.25)
    flat = result_metrics(scheduler.stats())
    for key in ("full_task_success_rate", "level_mean", "level_max", "level_success_rate/2", "level_hist/2"):
        assert key in flat, key
    assert math.isnan(flat["full_task_success_rate"]) and math.isnan(flat["level_success_rate/0"])
    nested = nest(flat)
    assert set(nested["level_hist"]) == {"0", "1", "2"} and nested["level_hist"]["0"] == 1.0
    off = result_metrics(make_scheduler(enabled=False, eval_fraction=0.25).stats())
    assert "level_mean" not in off and math.isnan(off["full_task_success_rate"])
