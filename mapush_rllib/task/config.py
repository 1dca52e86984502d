"""Typed configuration of the MAPush task on top of the physics: task parameters and reward scales.

Defaults are the MAPush `go1push_mid` values (docs/mapush-task.md, cited as "spec §N"). Every model forbids
unknown keys and is strict about types (`mapush_rllib.sim.schema.StrictModel`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mapush_rllib.sim.config import NUM_AGENTS, box_mass_following_size_kg
from mapush_rllib.sim.schema import Range, StrictModel, check_range

#: The agents' ids, in the order of the agent axis of every (num_envs, num_agents, ...) tensor.
AGENT_IDS = tuple(f"agent_{i}" for i in range(NUM_AGENTS))


def agent_index(agent_id: str) -> int:
    """Position of `agent_id` on the agent axis (raises ValueError for an unknown id)."""
    if agent_id not in AGENT_IDS:
        raise ValueError(f"unknown agent id {agent_id!r}; agents: {list(AGENT_IDS)}")
    return AGENT_IDS.index(agent_id)


#: Names of the reward terms: the seven of MAPush, in the order of the spec's table (spec §3), then our own.
REWARD_TERMS = (
    "reach_target",
    "exception",
    "distance_to_target",
    "approach_to_box",
    "collision",
    "push",
    "ocb",
    "own_push",
    "joint_push",
)


def scale_updates(update: dict[str, float] | dict[str, dict[str, float]]) -> list[tuple[str, str, float]]:
    """(agent id, term, scale) for each value of a reward-scale update, given as {term: scale} for every agent or
    as {agent_id: {term: scale}}. Raises ValueError naming an unknown agent or term."""
    per_agent = bool(update) and all(isinstance(value, dict) for value in update.values())
    rows = update.items() if per_agent else [(agent_id, update) for agent_id in AGENT_IDS]
    updates = []
    for agent_id, terms in rows:
        if agent_id not in AGENT_IDS:
            raise ValueError(f"reward scales: unknown agent {agent_id!r}; agents: {list(AGENT_IDS)}")
        for term, value in terms.items():
            if term not in REWARD_TERMS:
                raise ValueError(f"reward scales.{agent_id}: unknown term {term!r}; valid terms: {list(REWARD_TERMS)}")
            updates.append((agent_id, term, float(value)))
    return updates


class TaskConfig(StrictModel):
    """Task parameters. Each env holds its own copy (the curriculum changes them between resets)."""

    target_distance_m: Range = Field((1.5, 3.0), description="box-to-target distance at reset (spec §1.3)")
    box_size_m: float = Field(1.2, gt=0, description="side of the square box footprint (spec §1.2: 1.2 m)")
    box_mass_kg: float | None = Field(
        4.0, gt=0, description="box mass; null scales it with the footprint area from 4 kg at 1.2 m"
    )
    spawn_radius_m: Range = Field((1.2, 1.3), description="agent distance from the box centre at reset (spec §1.3)")
    success_radius_m: float = Field(1.0, gt=0, description="success when the box centre is this close (spec §1.4)")
    episode_length_s: float = Field(20.0, gt=0, description="time limit (spec §1.2: 20 s = 1000 steps)")
    agent_collision_distance_m: float = Field(0.25, ge=0, description="exception below this agent distance (spec §1.4)")
    box_lift_limit_m: float = Field(0.35, gt=0, description="exception when the box leaves its rest height by more")
    box_tilt_limit_rad: float = Field(0.8, gt=0, description="exception when the box tilts by more")

    @model_validator(mode="after")
    def _ranges(self) -> TaskConfig:
        check_range("target_distance_m", self.target_distance_m, minimum=0.0)
        check_range("spawn_radius_m", self.spawn_radius_m, minimum=0.0)
        return self

    def resolved_box_mass_kg(self, box_size_m: float | None = None) -> float:
        size = self.box_size_m if box_size_m is None else box_size_m
        if self.box_mass_kg is not None:
            return self.box_mass_kg
        return box_mass_following_size_kg(size)


class RewardScales(StrictModel):
    """Scale of each MAPush reward term (spec §3, `task/cuboid/config.py`). Signs live in the scales."""

    reach_target: float = 10.0
    exception: float = -5.0
    distance_to_target: float = 0.00325
    approach_to_box: float = 0.00075
    collision: float = -0.0025
    push: float = 0.0015
    ocb: float = 0.004
    own_push: float = Field(
        0.0, description="not MAPush's (0 keeps its reward): each agent's own push on the box toward the target"
    )
    joint_push: float = Field(
        0.0, description="not MAPush's (0 keeps its reward): paid to both agents only while both push toward the target"
    )


class RewardConfig(StrictModel):
    """Reward terms, their scales (per agent where given) and how shared terms are credited."""

    scales: RewardScales = Field(default_factory=RewardScales)
    per_agent_scales: dict[Literal[AGENT_IDS], dict[str, float]] = Field(
        default_factory=dict, description="overrides of `scales` for one agent, e.g. {agent_1: {ocb: 0.008}}"
    )
    attribution: Literal["shared", "contribution"] = Field(
        "shared",
        description=(
            "shared: team terms go in full to every agent (MAPush). contribution: the team terms "
            "distance_to_target, push and reach_target are split by each agent's share of contact force on the box"
        ),
    )
    expanded_ocb: bool = Field(False, description="MAPush's expanded OCB variant (on in the published runs, spec §3)")

    @model_validator(mode="after")
    def _known_terms(self) -> RewardConfig:
        for agent, overrides in self.per_agent_scales.items():
            unknown = sorted(set(overrides) - set(REWARD_TERMS))
            if unknown:
                raise ValueError(
                    f"per_agent_scales.{agent}: unknown reward term(s) {unknown}; valid terms: {list(REWARD_TERMS)}"
                )
        return self

    def scale_table(self) -> list[list[float]]:
        """Scales as a (num_agents, num_terms) table in REWARD_TERMS order."""
        base = self.scales.model_dump()
        table = []
        for agent_id in AGENT_IDS:
            row = dict(base, **self.per_agent_scales.get(agent_id, {}))
            table.append([float(row[name]) for name in REWARD_TERMS])
        return table
