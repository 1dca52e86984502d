"""Malformed experiment files, one per field type and section: one readable line naming the field, exit 2,
nothing written, Ray never started (the checks all run before `ray.init`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from population.run import main

CASES = [
    # (yaml, the field the message names, words the message says)
    ("simulator: {num_envs: many}", "simulator.num_envs", "valid integer"),  # int: wrong type
    ("simulator: {num_envs: 8.5}", "simulator.num_envs", "valid integer"),  # int: not whole
    ("simulator: {num_envs: true}", "simulator.num_envs", "valid integer"),  # int: a bool is no int
    ("simulator: {backend: bullet}", "simulator.backend", "Input should be"),  # literal
    ("simulator: {device: 3}", "simulator.device", "valid string"),  # string
    ("simulator: {physics: {physics_dt_s: -0.005}}", "simulator.physics.physics_dt_s", "greater than 0"),  # float range
    ("simulator: {physics: {box_friction_range: [0.6, 0.5]}}", "box_friction_range", "larger than high"),  # range order
    ("simulator: {physics: {box_friction_range: [0.5]}}", "simulator.physics.box_friction_range.1", "Field required"),
    ("simulator: {physics: 7}", "simulator.physics", "valid dictionary"),  # nested model
    ("task: {target_distance_m: [2.0, 1.5]}", "target_distance_m", "larger than high"),
    ("task: {target_distance_m: [0.5, 2.0]}", "target_distance_m", "success radius"),  # impossible for the sim
    ("task: {box_size_m: 0}", "task.box_size_m", "greater than 0"),
    ("task: {box_mass_kg: heavy}", "task.box_mass_kg", "valid number"),  # optional float
    ("rewards: {attribution: fair}", "rewards.attribution", "'shared' or 'contribution'"),
    ("rewards: {expanded_ocb: maybe}", "rewards.expanded_ocb", "valid boolean"),  # bool
    ("rewards: {per_agent_scales: {agent_0: {ocb: high}}}", "rewards.per_agent_scales.agent_0.ocb", "valid number"),
    ("rewards: {per_agent_scales: [1, 2]}", "rewards.per_agent_scales", "valid dictionary"),  # dict
    ("training: {model: {hidden_sizes: []}}", "training.model.hidden_sizes", "at least 1"),  # list
    ("training: {model: {hidden_sizes: [64, wide]}}", "training.model.hidden_sizes.1", "valid integer"),
    ("training: {gamma: 1.5}", "training.gamma", "less than or equal to 1"),
    ("run: {name: 'my run/1'}", "run.name", "match pattern"),
    ("run: {stop: {env_steps: -1}}", "run.stop.env_steps", "greater than 0"),
    ("run: {resources: {cpus: 0}}", "run.resources.cpus", "greater than 0"),
    ("pbt: {population_size: 1}", "pbt.population_size", "greater than or equal to 2"),
    ("pbt: {quantile_fraction: 0.8}", "pbt.quantile_fraction", "less than or equal to 0.5"),
    ("pbt: {perturbation_factors: [0.5, 1.5]}", "perturbation_factors", "below the allowed minimum 1.0"),
    ("pbt: {entropy_coeff_range: [0.0, 0.1]}", "entropy_coeff_range", "must be positive"),
    ("pbt: {reward_scales: everything}", "pbt.reward_scales", "Input should be"),
    ("pbt: {mutations: {training.lr: [0.001, 0.0001]}}", "pbt.mutations.training.lr", "must be below"),
    ("pbt: {mutations: {training.batch: [1, 2]}}", "pbt.mutations.training.batch", "not a mutable value"),
    ("pbt: {mutations: {training.per_module.policy_9.lr: [0.0001, 0.001]}}", "policy_9", "unknown policy"),
    ("pbt: {mutations: {training.lr: [0.001, 0.002]}}\ntraining: {lr: 0.0005}", "pbt.mutations.training.lr",
     "outside [0.001, 0.002]"),  # member 0 would start outside the bounds
    ("pbt: {entropy: none, mutations: {training.per_module.policy_0.lr: [0.0001, 0.001]}}",
     "pbt.mutations.training.per_module.policy_0.lr", "does not set it"),  # was a TypeError traceback
    ("pbt: {score: {freeloading_weight: 2}}", "pbt.score.freeloading_weight", "less than or equal to 1"),
    ("pbt: {}\nrun: {checkpoints_to_keep: 2}", "run.checkpoints_to_keep", "too few for PBT"),
    ("pbt: {perturbation_interval: 50}\nrun: {checkpoints_to_keep: 4, checkpoint_every_iterations: 10}",
     "run.checkpoints_to_keep", "do not reach back"),
    ("pbt: {shared_reward_terms: [own_push, own_push]}", "shared_reward_terms", "names a term twice"),
    ("pbt: {reward_scales: shared}\nrewards: {per_agent_scales: {agent_0: {ocb: 0.01}}}", "pbt.reward_scales",
     "overrides (ocb)"),
    ("pbt: {mutations: {rewards.per_agent_scales.agent_0.own_push: [0.01, 0.05]}}",
     "pbt.mutations.rewards.per_agent_scales.agent_0.own_push", "pbt.shared_reward_terms"),
    ("pbt: {populaton_size: 4}", "pbt.populaton_size", "Extra inputs are not permitted"),  # unknown key
    ("evaluation: {num_envs: 0}", "evaluation.num_envs", "greater than or equal to 1"),  # no evaluation envs
    ("simulator: {num_envs: 8}\nevaluation: {num_envs: 9}", "evaluation.num_envs", "more than the 8 envs"),
    ("evaluation: {interval_iterations: 0}", "evaluation.interval_iterations", "greater than 0"),
    ("evaluation: {seed: 2}\npbt: {population_size: 4}", "evaluation.seed", "is a training seed"),
    ("evaluation: {asynchronous: true, interval_iterations: 10, lead_iterations: 10}", "evaluation.lead_iterations",
     "not less than the 10 iterations"),  # the handed-over policies would be judged after their decision
    ("evaluation: {asynchronous: true, interval_iterations: 30, lead_iterations: 5}\n"
     "run: {checkpoint_every_iterations: 10}", "evaluation.lead_iterations", "must have checkpoints"),
    ("evaluation: {asynchronous: yes please}", "evaluation.asynchronous", "valid boolean"),
    ("evaluation: {asynchronous: true, interval_iterations: 40, lead_iterations: 30}\n"
     "run: {checkpoint_every_iterations: 10, checkpoints_to_keep: 2}", "run.checkpoints_to_keep", "do not reach back"),
    ("pbt: {perturbation_interval: 30, burn_in: 45}", "pbt.burn_in:", "decides at iterations 45, 75"),  # off the grid
    ("pbt: {perturbation_interval: 30, burn_in: 40}\nevaluation: {interval_iterations: 20}",
     "pbt.perturbation_interval:", "evaluate themselves every 20"),
    ("curriculum: {level_episodes: 200}", "curriculum.level_episodes", "exceeds stats_window_episodes"),
    # NaN and infinity are never settings (they trained to the end on NaN before)
    ("rewards: {scales: {ocb: .nan}}", "rewards.scales.ocb", "finite number"),
    ("training: {lr: .inf}", "training.lr", "finite number"),
    ("pbt: {entropy_coeff_range: [0.001, .inf]}", "pbt.entropy_coeff_range.1", "finite number"),
    ("pbt: {reward_scale_range: .inf}", "pbt.reward_scale_range", "finite number"),  # was "math domain error"
    ("simulator: {num_envs: 100000000000}", "simulator.num_envs", "less than or equal to 1048576"),  # 800 GB
    ("run: {initial_policy: /nonexistent/run}", "run.initial_policy", "does not exist"),  # a missing checkpoint
]


@pytest.mark.parametrize(("text", "field", "words"), CASES, ids=[case[1] for case in CASES])
def test_malformed_file_gets_one_line_naming_the_field(tmp_path: Path, capsys, text: str, field: str,
                                                        words: str) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text + "\n")
    storage = tmp_path / "runs"
    assert main([str(config), "--storage", str(storage)]) == 2
    out, err = capsys.readouterr()
    problem = err.strip().splitlines()[1:]
    assert out == "" and len(problem) == 1, err
    assert field in problem[0] and words in problem[0], problem[0]
    assert not storage.exists(), "nothing is written for an invalid file"


def test_resume_without_a_previous_run_is_one_clear_message(tmp_path: Path, capsys) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text("run: {name: fresh}\n")
    assert main([str(config), "--storage", str(tmp_path / "runs"), "--resume"]) == 2
    assert "no run of 'fresh'" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["file", "override"])
def test_numbers_in_exponent_form_are_numbers(tmp_path: Path, capsys, how: str) -> None:
    """YAML 1.1 reads `1e-3` as a string; users write learning rates that way."""
    config = tmp_path / "ok.yaml"
    config.write_text("training: {lr: 3e-4}\n" if how == "file" else "{}\n")
    overrides = ["--set", "training.lr=1e-3"] if how == "override" else []
    assert main([str(config), "--dry-run", *overrides]) == 0
    lr = json.loads(capsys.readouterr().out)["experiment"]["training"]["lr"]
    assert lr == (3e-4 if how == "file" else 1e-3)


def test_storage_that_is_a_file_is_one_clear_message_before_ray(tmp_path: Path, capsys) -> None:
    storage = tmp_path / "runs"
    storage.write_text("not a folder")
    config = tmp_path / "ok.yaml"
    config.write_text("run: {name: fresh}\n")
    assert main([str(config), "--storage", str(storage)]) == 2
    err = capsys.readouterr().err
    assert "run.storage" in err and "is a file" in err and "Traceback" not in err
    assert storage.read_text() == "not a folder"


def _reward_scale_mutations(*overrides) -> dict[str, tuple[float, float]]:
    from population.config import load_experiment
    from population.pbt_config import member_experiment, resolved_mutations

    pbt_yaml = Path(__file__).parents[2] / "configs" / "pbt.yaml"
    experiment = member_experiment(load_experiment(pbt_yaml, overrides=overrides))
    return {m.path: (m.low, m.high) for m in resolved_mutations(experiment) if m.path.startswith("rewards.")}


def test_pbt_mutates_own_push_once_for_both_agents_only_when_it_is_switched_on():
    def own_push(mutations):
        return {path: bounds for path, bounds in mutations.items() if path.endswith(".own_push")}

    assert own_push(_reward_scale_mutations()) == {}, "scale 0: the term stays off, MAPush's reward"
    mutations = _reward_scale_mutations("rewards.scales.own_push=0.02")
    assert own_push(mutations) == {"rewards.scales.own_push": pytest.approx((0.005, 0.08))}
    assert "rewards.per_agent_scales.agent_1.ocb" in mutations, "the other terms stay per agent"
    assert own_push(_reward_scale_mutations("rewards.scales.own_push=0.02", "pbt.shared_reward_terms=[]")) == {
        f"rewards.per_agent_scales.agent_{i}.own_push": pytest.approx((0.005, 0.08)) for i in range(2)
    }


def test_explicit_bounds_replace_the_default_bounds_of_a_mutated_value():
    default = _reward_scale_mutations("rewards.scales.own_push=0.02")
    bounded = _reward_scale_mutations("rewards.scales.own_push=0.02",
                                      "pbt.mutations={rewards.scales.own_push: [0.02, 0.08]}")
    assert bounded["rewards.scales.own_push"] == (0.02, 0.08) != default["rewards.scales.own_push"]
    assert list(bounded) == list(default), "one mutation per value, in its place"
    from population.config import load_experiment
    from population.members import plan_population

    pbt_yaml = Path(__file__).parents[2] / "configs" / "pbt.yaml"
    plan = plan_population(load_experiment(pbt_yaml, overrides=[
        "rewards.scales.own_push=0.02", "pbt.mutations={rewards.scales.own_push: [0.02, 0.08]}"]))
    starts = [member["rewards.scales.own_push"] for member in plan.initial]
    assert all(0.02 <= value <= 0.08 for value in starts) and max(starts) > 0.02


def test_shared_reward_scales_are_one_mutation_per_switched_on_term():
    mutations = _reward_scale_mutations("pbt.reward_scales=shared")
    assert set(mutations) == {f"rewards.scales.{term}" for term in ("reach_target", "exception", "distance_to_target",
                                                                       "approach_to_box", "collision", "push", "ocb")}


def test_a_shared_term_set_for_one_agent_is_one_clear_message(tmp_path: Path, capsys) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("pbt: {}\nrewards: {per_agent_scales: {agent_1: {own_push: 0.03}}}\n")
    assert main([str(config)]) == 2
    err = capsys.readouterr().err
    assert "pbt.shared_reward_terms" in err and "rewards.per_agent_scales.agent_1.own_push" in err
    assert "Traceback" not in err
