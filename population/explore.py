"""Explore: mutate a member's hyperparameters after it copied a better member (PBT, arXiv 1711.09846).

Every mutated value is a positive or negative scale (reward-term scales, entropy coefficients, learning rates),
so mutations act on its magnitude in log space: multiply or divide by a factor drawn log-uniformly from
[factor_min, factor_max] (DexPBT's x/÷ U[1.1, 1.5]), or, with `resample_probability`, draw a fresh value
log-uniformly from the bounds. The sign never changes and results are clamped into the bounds — Tune's built-in
explore can drift outside declared ranges (ray#11936).

Pure functions of an explicit `random.Random`, so a seeded call always gives the same answer.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    """One mutable hyperparameter: a dotted path into the member's config and its bounds (same sign)."""

    path: str  # e.g. "rewards.scales.ocb" or "training.entropy_coeff.policy_1"
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (self.low < self.high):
            raise ValueError(f"pbt.mutations.{self.path}: low {self.low} must be below high {self.high}")
        if self.low * self.high <= 0:
            raise ValueError(
                f"pbt.mutations.{self.path}: bounds [{self.low}, {self.high}] must not include 0 "
                "(values are mutated in log space; use two negative bounds for a penalty)"
            )

    @property
    def sign(self) -> float:
        return 1.0 if self.high > 0 else -1.0

    def clamp(self, value: float) -> float:
        return min(max(value, self.low), self.high)

    def sample(self, rng: random.Random) -> float:
        """A value drawn log-uniformly between the bounds."""
        lo, hi = sorted((abs(self.low), abs(self.high)))
        return self.sign * math.exp(rng.uniform(math.log(lo), math.log(hi)))


def get_path(config: dict, path: str) -> float:
    node = config
    for key in path.split("."):
        node = node[key]
    return node


def set_path(config: dict, path: str, value: float) -> None:
    keys = path.split(".")
    node = config
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def explore(
    config: dict,
    mutations: list[Mutation],
    rng: random.Random,
    *,
    resample_probability: float = 0.25,
    factor_range: tuple[float, float] = (1.1, 1.5),
) -> tuple[dict, dict[str, str]]:
    """Mutate every listed hyperparameter of a copy of `config`.

    Returns:
        The new config, and for each path what was done, e.g. {"rewards.scales.ocb": "0.004 --- (* 1.32) --> 0.00528"}.
    """
    new = copy.deepcopy(config)
    operations = {}
    for mutation in mutations:
        old = float(get_path(config, mutation.path))
        if rng.random() < resample_probability:
            value, how = mutation.sample(rng), "resample"
        else:
            factor = math.exp(rng.uniform(math.log(factor_range[0]), math.log(factor_range[1])))
            if rng.random() < 0.5:
                factor = 1 / factor
            value, how = old * factor, f"* {factor:.3g}"
        clamped = mutation.clamp(value)
        if clamped != value:
            how += ", clamped"
        set_path(new, mutation.path, clamped)
        operations[mutation.path] = f"{old:.4g} --- ({how}) --> {clamped:.4g}"
    return new, operations
