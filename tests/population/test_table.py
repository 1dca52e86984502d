"""The console table on real Tune trials: member order, honest columns, drift of the mutated values."""

from __future__ import annotations

import math

from ray.tune.experiment import Trial

from population.table import WIDTH, PopulationTable, drift


class Plan:
    """What the table reads of a `PopulationPlan`: each member's starting values and where they live."""

    def __init__(self, initial: list[dict[str, float]]) -> None:
        self.initial = initial

    def trial_config_locations(self) -> dict[str, str]:
        return {"training.lr": "lr", "rewards.scales.ocb": "env_config.ocb"}


def make_trial(member: int, lr: float, ocb: float, result: dict) -> Trial:
    trial = Trial("__fake", stub=True, config={"member": member, "lr": lr, "env_config": {"ocb": ocb}})
    trial.run_metadata.last_result = result
    return trial


def test_rows_in_member_order_within_120_columns_with_drift() -> None:
    start = [{"training.lr": 1e-3, "rewards.scales.ocb": 0.004}] * 3
    trials = [
        make_trial(2, 1e-3, 0.004, {"training_iteration": 7, "eval": {"success_rate": 0.5}}),
        make_trial(0, 4e-3, 0.001, {"training_iteration": 12345678, "env_runners":
                                    {"num_env_steps_sampled_lifetime": 123456789012}, "pbt": {"score": 0.25}}),
        make_trial(1, 2e-3, 0.004, {}),
    ]
    table = PopulationTable(top_level=7, plan=Plan(start))
    lines = table.render(trials).splitlines()
    assert "level/7" in lines[0] and "success" in lines[0] and "drift" in lines[0]
    assert [line.split()[0] for line in lines[1:4]] == ["0", "1", "2"]
    assert all(len(line) <= WIDTH for line in lines)
    assert lines[1].split()[-1] == "x4.00" and lines[3].split()[-1] == "x1.00"  # lr x4 and ocb /4: both 4
    assert lines[3].split()[4] == "0.50", "success is the evaluation's"
    assert lines[2].split()[4] == "-", "no evaluation yet: no number"
    moved = {"lr": 2e-3, "env_config": {"ocb": 0.004}}
    assert math.isclose(drift(moved, start[0], Plan(start).trial_config_locations()), math.sqrt(2))
