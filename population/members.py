"""The members of a population: their starting hyperparameters, Tune search space and scheduler.

Every member trains two policies with the same experiment; they differ only in the mutated values (reward
scales, entropy coefficients, anything `pbt.mutations` names) and in their seed. Member 0 starts from the
experiment as written; with `pbt.initial: perturbed` every other member starts from one explore step of it,
so the population covers a neighbourhood of the configured values from the first iteration.

Tune sees one trial per member: a grid over `member` (0..N-1), with each mutated value drawn for that
member by `InitialValue` (Tune's `sample_from` over the resolved grid value), so trial configs hold plain
numbers that PBT's explore step can change.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ray import tune

from mapush_rllib.training import config_dict_path
from population.explore import Mutation, explore, get_path, set_path
from population.pbt_config import member_experiment, resolved_mutations
from population.scheduler import SCORE_METRIC, ConservativePBT, MemberExplorer


@dataclass
class PopulationPlan:
    """What a population run starts from; printed by `--dry-run`."""

    experiment: object  # ExperimentConfig with every mutated value written out
    mutations: list[Mutation]  # experiment paths and bounds
    initial: list[dict[str, float]]  # per member: experiment path -> starting value

    def trial_config_locations(self) -> dict[str, str]:
        """Experiment path -> its path in the trial config Tune hands each member (translated here, once)."""
        return {m.path: config_dict_path(m.path) for m in self.mutations}

    def describe(self) -> dict:
        return {
            "population_size": len(self.initial),
            "mutations": {m.path: [m.low, m.high] for m in self.mutations},
            "initial_values": {f"member_{i}": values for i, values in enumerate(self.initial)},
        }


class InitialValue:
    """`tune.sample_from` function: the starting value of one mutated hyperparameter for each member."""

    def __init__(self, values: list[float]) -> None:
        self.values = values

    def __call__(self, config: dict) -> float:
        return self.values[config["member"]]


class MemberSeed:
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, config: dict) -> int:
        return self.seed + config["member"]


def plan_population(experiment) -> PopulationPlan:
    """Members' starting values, seeded by `run.seed` (the same file gives the same population)."""
    pbt = experiment.pbt
    experiment = member_experiment(experiment)
    mutations = resolved_mutations(experiment)
    base = experiment.model_dump(mode="python")
    initial = []
    for member in range(pbt.population_size):
        config = base
        if member > 0 and pbt.initial == "perturbed":
            config, _ = explore(base, mutations, random.Random(experiment.run.seed * 7919 + member),
                                resample_probability=pbt.resample_probability,
                                factor_range=pbt.perturbation_factors)
        initial.append({m.path: float(get_path(config, m.path)) for m in mutations})
    return PopulationPlan(experiment, mutations, initial)


def param_space(plan: PopulationPlan, algorithm_config) -> dict:
    """The Tune search space: the PPOConfig of `plan.experiment` as a dict, with per-member starting values and
    seeds (`algorithm_config` must be built from `plan.experiment`, where every mutated value is written out)."""
    space = algorithm_config.to_dict()
    space["member"] = tune.grid_search(list(range(len(plan.initial))))
    for path, location in plan.trial_config_locations().items():
        set_path(space, location, tune.sample_from(InitialValue([values[path] for values in plan.initial])))
    seed = plan.experiment.run.seed
    space["seed"] = tune.sample_from(MemberSeed(seed))
    space["env_config"]["seed"] = tune.sample_from(MemberSeed(seed))
    return space


def make_scheduler(plan: PopulationPlan) -> ConservativePBT:
    pbt = plan.experiment.pbt
    return ConservativePBT(
        time_attr="training_iteration",
        perturbation_interval=pbt.perturbation_interval,
        burn_in_period=pbt.burn_in,
        quantile_fraction=pbt.quantile_fraction,
        synch=pbt.synchronous,
        explorer=MemberExplorer(
            plan.mutations, plan.trial_config_locations(), seed=plan.experiment.run.seed,
            resample_probability=pbt.resample_probability, factor_range=pbt.perturbation_factors,
        ),
        threshold_std=pbt.replace_threshold_std,
        threshold_abs=pbt.replace_threshold_abs,
        log_config=True,
    )


__all__ = ["PopulationPlan", "plan_population", "param_space", "make_scheduler", "SCORE_METRIC"]
