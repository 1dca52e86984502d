"""Typed configuration of the simulator: which physics engine runs the batch, how big it is, the bodies in it.

Defaults are the MAPush `go1push_mid` values (docs/mapush-task.md, cited as "spec §N"). The task on top of the
physics (reset distributions, success, rewards) is configured in `mapush_rllib.task.config`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mapush_rllib.sim.schema import Range, StrictModel, check_range

#: The scene holds two robots; every per-agent tensor has this many rows.
NUM_AGENTS = 2


def box_mass_following_size_kg(box_size_m):
    """Mass of a box of this footprint at MAPush's areal density (4 kg for the 1.2 m box); floats or tensors."""
    return 4.0 * (box_size_m / 1.2) ** 2


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


#: The most envs one simulator may hold.
MAX_NUM_ENVS = 2**20


class SimConfig(StrictModel):
    """Which simulator runs the batch and how big it is."""

    backend: Literal["mujoco", "mujoco_warp", "isaacgym", "server"] = Field(
        "mujoco",
        description=(
            "mujoco: embedded, in this process. server: a simulator server process hosting server.hosted_backend. "
            "isaacgym: MAPush's Isaac Gym env in a simulator server run by server.python"
        ),
    )
    # The bound catches a typo before a multi-GB allocation; 2^20 envs is ~60x the largest batch measured on an H200.
    num_envs: int = Field(64, ge=1, le=MAX_NUM_ENVS)
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

    def with_num_envs(self, num_envs: int) -> SimConfig:
        """This simulator at another batch size (num_envs is the one place a batch size is kept)."""
        return self.model_copy(update={"num_envs": num_envs})
