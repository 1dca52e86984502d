"""Typed configuration of the pushing task: simulator, task parameters and reward scales.

Defaults are the MAPush `go1push_mid` values (`shared/research/mapush-task.md`, cited as "spec §N").
Every model forbids unknown keys and is strict about types, so a typo or a wrong type in a YAML file fails
with a message naming the field instead of being silently ignored or coerced.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, model_validator

StrictFloat = Annotated[float, Strict()]
#: A (low, high) pair. YAML gives lists, so the tuple itself is lax while its items stay strict.
Range = Annotated[tuple[StrictFloat, StrictFloat], Strict(False)]

NUM_AGENTS = 2
#: Names of the seven MAPush reward terms, in the order of the spec's table (spec §3).
REWARD_TERMS = (
    "reach_target",
    "exception",
    "distance_to_target",
    "approach_to_box",
    "collision",
    "push",
    "ocb",
)


def box_mass_following_size_kg(box_size_m):
    """Mass of a box of this footprint at MAPush's areal density (4 kg for the 1.2 m box); floats or tensors."""
    return 4.0 * (box_size_m / 1.2) ** 2


class StrictModel(BaseModel):
    """Base of every config model: unknown keys and wrong types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


def check_range(name: str, value: tuple[float, float], *, minimum: float | None = None) -> None:
    """Raise ValueError unless `value` is an ordered (low, high) pair at or above `minimum`."""
    low, high = value
    if low > high:
        raise ValueError(f"{name}: low {low} is larger than high {high}; write [low, high]")
    if minimum is not None and low < minimum:
        raise ValueError(f"{name}: {low} is below the allowed minimum {minimum}")


class PhysicsConfig(StrictModel):
    """The simulated bodies: a free box, two Go1-footprint agents on planar joints, a flat floor."""

    physics_dt_s: float = Field(0.005, gt=0, le=0.02, description="physics step (spec §1.2: 5 ms)")
    substeps: int = Field(4, ge=1, le=40, description="physics steps per 50 Hz policy step (spec §1.2: decimation 4)")
    ground_friction: float = Field(0.1, ge=0, description="floor friction coefficient (spec §1.2)")
    box_friction_range: Range = Field((0.5, 0.6), description="box friction, drawn once per env (spec §1.2)")
    box_height_m: float = Field(0.5, gt=0, description="box height; the curriculum changes only its footprint")
    agent_length_m: float = Field(0.6, gt=0, description="Go1 footprint along its heading")
    agent_width_m: float = Field(0.3, gt=0, description="Go1 footprint across its heading")
    agent_height_m: float = Field(0.3, gt=0, description="height of the agent's collision body")
    agent_mass_kg: float = Field(12.0, gt=0)
    agent_max_force_n: float = Field(120.0, gt=0, description="force limit of the vx and vy velocity servos")
    agent_max_torque_nm: float = Field(30.0, gt=0, description="torque limit of the yaw-rate servo")
    agent_velocity_gain: float = Field(300.0, gt=0, description="vx/vy servo gain, N per (m/s) of error")
    agent_yaw_gain: float = Field(40.0, gt=0, description="yaw-rate servo gain, N*m per (rad/s) of error")
    solver_iterations: int = Field(20, ge=1)

    @model_validator(mode="after")
    def _ranges(self) -> PhysicsConfig:
        check_range("box_friction_range", self.box_friction_range, minimum=0.0)
        return self

    @property
    def policy_dt_s(self) -> float:
        return self.physics_dt_s * self.substeps


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


class RewardConfig(StrictModel):
    """Reward terms, their scales (per agent where given) and how shared terms are credited."""

    scales: RewardScales = Field(default_factory=RewardScales)
    per_agent_scales: dict[Literal["agent_0", "agent_1"], dict[str, float]] = Field(
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
        for agent in range(NUM_AGENTS):
            row = dict(base, **self.per_agent_scales.get(f"agent_{agent}", {}))
            table.append([float(row[name]) for name in REWARD_TERMS])
        return table


class BoxVariant(StrictModel):
    """One box the Isaac Gym backend builds at start (its GPU pipeline cannot resize or re-weigh an actor later)."""

    size_m: float = Field(gt=0, description="side of the square footprint; the height is physics.box_height_m")
    mass_kg: float | None = Field(None, gt=0, description="null: follows the area from 4 kg at 1.2 m, as levels do")

    def resolved_mass_kg(self) -> float:
        return box_mass_following_size_kg(self.size_m) if self.mass_kg is None else self.mass_kg


class IsaacGymConfig(StrictModel):
    """Where the user's MAPush checkout is and how to build its `go1push_mid` env (docs/isaacgym.md)."""

    mapush_path: str = Field("", description="root of the MAPush checkout (the folder holding mqe/ and resources/)")
    sim_device: str = Field("cuda:0", description="Isaac Gym simulation device")
    headless: bool = True
    seed: int = Field(0, description="MAPush's own seed (its box friction draw at creation, which set_box replaces)")
    box_variants: list[BoxVariant] = Field(
        default_factory=lambda: [BoxVariant(size_m=1.2)],
        min_length=1,
        description=(
            "every (box_size_m, box_mass_kg) the curriculum may ask for; one box actor per variant and env is "
            "created at start and the unused ones are parked. The first 1.2 m / 4 kg entry is MAPush's own box"
        ),
    )


class ServerConfig(StrictModel):
    """The simulator server: a separate process, possibly another Python, that hosts one physics backend."""

    python: str = Field(
        "", description="interpreter that runs the server; empty = this one. For isaacgym: Isaac Gym's Python (3.8)"
    )
    hosted_backend: Literal["mujoco", "isaacgym"] = Field(
        "mujoco", description="backend the server hosts when simulator.backend is 'server'"
    )
    startup_timeout_s: float = Field(600.0, gt=0, description="time allowed to build the backend (Isaac Gym: minutes)")
    reply_timeout_s: float = Field(300.0, gt=0, description="longest wait for one reset/step before giving up")
    log_dir: str = Field("", description="folder for the server's stdout/stderr log; empty = a temporary folder")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra environment variables for the server (e.g. LD_LIBRARY_PATH, CUDA_VISIBLE_DEVICES); "
        "PYTHONPATH entries are put after the project's own root",
    )
    isaacgym: IsaacGymConfig = Field(default_factory=IsaacGymConfig)


class SimConfig(StrictModel):
    """Which simulator runs the batch and how big it is."""

    backend: Literal["mujoco", "mujoco_warp", "isaacgym", "server"] = Field(
        "mujoco",
        description=(
            "mujoco: embedded, in this process. server: a simulator server process hosting server.hosted_backend. "
            "isaacgym: MAPush's Isaac Gym env in a simulator server run by server.python"
        ),
    )
    num_envs: int = Field(64, ge=1)
    num_threads: int = Field(0, ge=0, description="MuJoCo batch threads; 0 = all CPUs")
    device: str = Field("cpu", description="torch device of the returned tensors (cpu, cuda)")
    physics: PhysicsConfig = Field(default_factory=PhysicsConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)

    @model_validator(mode="after")
    def _isaacgym_needs_paths(self) -> SimConfig:
        if self.backend == "isaacgym":
            if not self.server.python:
                raise ValueError(
                    "server.python: simulator.backend 'isaacgym' needs the path of the Python interpreter that has "
                    "Isaac Gym Preview 4 installed (Python 3.6-3.8), e.g. ~/miniconda3/envs/rlgpu/bin/python"
                )
            if not self.server.isaacgym.mapush_path:
                raise ValueError(
                    "server.isaacgym.mapush_path: simulator.backend 'isaacgym' needs the path of your MAPush "
                    "checkout (git clone https://github.com/collaborative-mapush/MAPush)"
                )
        return self


#: A message of a model-level check that names the field it is about, e.g. "levels.2.box_size_m: ...".
_NAMED_FIELD = re.compile(r"([A-Za-z_]\w*(?:\.\w+)*): (.*)", re.DOTALL)


def format_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One readable line per problem: `field.path: message (got value)`.

    A model-level check reports at the model's path; when its message starts with the field it is about,
    that field continues the path (`curriculum` + `levels.2.box_size_m: ...`).
    """
    lines = []
    for item in error.errors():
        path = ".".join(str(p) for p in (prefix, *item["loc"]) if p != "")
        message = item["msg"].removeprefix("Value error, ")
        named = _NAMED_FIELD.fullmatch(message) if item["type"] == "value_error" else None
        if named:
            path = ".".join(p for p in (path, named[1]) if p)
            message = named[2]
        shown = "" if item["type"] in ("missing", "value_error") else f" (got {item.get('input')!r})"
        lines.append(f"{path}: {message}{shown}" if path else message)
    return "\n".join(lines)
