"""Per-env task parameters and the MAPush reset distributions drawn from them.

Every env has its own target distance range, box size and mass, and agent spawn radius range. They
can be changed for any subset of envs at any time (`TaskParams.set`) and take effect at those envs'
next reset, so a curriculum drives them without rebuilding the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mapush_rllib.sim.config import NUM_AGENTS, PhysicsConfig, box_mass_following_size_kg
from mapush_rllib.task.config import TaskConfig

#: Settable per-env parameters: name -> number of values per env.
TASK_PARAM_FIELDS = {"target_distance_m": 2, "box_size_m": 1, "box_mass_kg": 1, "spawn_radius_m": 2}
MAX_BOX_SIZE_M = 4.0
AGENT_INIT_SPEED_RANGE = 0.1  # agents start with |v| components up to this (spec §1.3)
SPAWN_CANDIDATES = 16  # tries to place the second agent clear of the first


class TaskParamError(ValueError):
    """A task parameter is invalid; the message names the field."""


@dataclass
class ResetState:
    """A sampled initial state for n envs. Box at rest at the env origin."""

    box_pose: torch.Tensor  # (n, 4): x, y, z, yaw
    target_xy: torch.Tensor  # (n, 2)
    agent_pose: torch.Tensor  # (n, A, 3): x, y, yaw
    agent_vel: torch.Tensor  # (n, A, 3): world vx, vy, yaw rate


def agent_half_diagonal_m(physics: PhysicsConfig) -> float:
    """Radius of the circle around an agent's footprint."""
    return math.hypot(physics.agent_length_m, physics.agent_width_m) / 2


def task_param_violations(
    values: dict[str, torch.Tensor], success_radius_m: float, agent_half_diagonal_m: float
) -> list[tuple[str, torch.Tensor, str]]:
    """The rules every set of task parameters must satisfy, as (field, (n,) bool mask of violators, rule).

    The single source of these rules: `TaskParams.validate` and the curriculum's level table both use it.

    Args:
        values: TASK_PARAM_FIELDS -> (n, 2) ranges or (n,) scalars.
        success_radius_m: the task's success radius.
        agent_half_diagonal_m: see `agent_half_diagonal_m(physics)`.
    """
    size, mass = values["box_size_m"], values["box_mass_kg"]
    checks = [
        ("box_size_m", ~torch.isfinite(size) | (size <= 0) | (size > MAX_BOX_SIZE_M),
         f"box size must be in (0, {MAX_BOX_SIZE_M}] m"),
        ("box_mass_kg", ~torch.isfinite(mass) | (mass <= 0), "box mass must be positive"),
    ]
    for name in ("target_distance_m", "spawn_radius_m"):
        lo, hi = values[name][:, 0], values[name][:, 1]
        checks.append((name, ~torch.isfinite(lo) | ~torch.isfinite(hi) | (lo > hi), "needs finite low <= high"))
    checks.append(("target_distance_m", values["target_distance_m"][:, 0] <= success_radius_m,
                   f"low must exceed the success radius {success_radius_m} m, or episodes start solved"))
    clearance = size / math.sqrt(2) + agent_half_diagonal_m
    checks.append(("spawn_radius_m", values["spawn_radius_m"][:, 0] < clearance - 1e-4,
                   "low must be at least the box half-diagonal plus the agent half-diagonal, "
                   "or agents spawn inside the box"))
    return checks


def task_config_problems(task: TaskConfig, physics: PhysicsConfig) -> list[str]:
    """The same rules for a task config, before any env exists: one `task.<field>: ...` line per violation.

    Lets an experiment file with an impossible task fail at load time instead of inside a trial.
    """
    values = {
        "box_size_m": torch.tensor([task.box_size_m]),
        "box_mass_kg": torch.tensor([task.resolved_box_mass_kg()]),
        "target_distance_m": torch.tensor([list(task.target_distance_m)]),
        "spawn_radius_m": torch.tensor([list(task.spawn_radius_m)]),
    }
    violations = task_param_violations(values, task.success_radius_m, agent_half_diagonal_m(physics))
    return [f"task.{name}: {getattr(task, name)} is invalid: {rule}" for name, bad, rule in violations if bool(bad[0])]


class TaskParams:
    """Per-env task parameters as (E,) / (E, 2) tensors, validated on every change."""

    def __init__(self, num_envs: int, task: TaskConfig, physics: PhysicsConfig, device: torch.device) -> None:
        self.num_envs = num_envs
        self.physics = physics
        self.device = device
        self.success_radius_m = task.success_radius_m
        # A spawn circle that clears the box for every bearing and yaw: box half-diagonal + agent half-diagonal.
        self.agent_half_diagonal_m = agent_half_diagonal_m(physics)
        full = lambda value: torch.tensor(value, dtype=torch.float32, device=device).expand(num_envs, -1).clone()  # noqa: E731
        self.target_distance_m = full(list(task.target_distance_m))
        self.spawn_radius_m = full(list(task.spawn_radius_m))
        self.box_size_m = full([task.box_size_m]).squeeze(1)
        self.box_mass_kg = full([task.resolved_box_mass_kg()]).squeeze(1)
        self.mass_follows_size = task.box_mass_kg is None
        self.box_version = 0  # counts `set` calls that touched the box, so users can skip unchanged boxes cheaply
        self.validate(torch.arange(num_envs, device=device))

    def set(
        self, env_ids: torch.Tensor, *, trusted: bool = False, **values: torch.Tensor | float | list[float]
    ) -> None:
        """Change parameters of `env_ids`; applied at each env's next reset.

        Unknown names, wrong shapes, negative sizes and min > max raise TaskParamError naming the field;
        on error nothing is changed. Without an explicit box_mass_kg, a new box_size_m keeps the box's
        areal density when the config's box_mass_kg is null. `trusted` values were already checked against
        `task_param_violations` (a curriculum's level table): the value check, a host sync on GPUs, is skipped.
        """
        unknown = sorted(set(values) - set(TASK_PARAM_FIELDS))
        if unknown:
            raise TaskParamError(f"unknown task parameter(s) {unknown}; valid: {list(TASK_PARAM_FIELDS)}")
        env_ids = torch.as_tensor(env_ids, device=self.device, dtype=torch.long)
        new = {}
        for name, value in values.items():
            width = TASK_PARAM_FIELDS[name]
            tensor = torch.as_tensor(value, dtype=torch.float32, device=self.device)
            shape = (len(env_ids), width) if width > 1 else (len(env_ids),)
            try:
                new[name] = tensor.expand(shape).clone()
            except RuntimeError:
                raise TaskParamError(
                    f"{name}: expected shape {shape} (or broadcastable), got {tuple(tensor.shape)}"
                ) from None
        if "box_size_m" in new and "box_mass_kg" not in new and self.mass_follows_size:
            new["box_mass_kg"] = box_mass_following_size_kg(new["box_size_m"])
        if "box_size_m" in new or "box_mass_kg" in new:
            self.box_version += 1
        if trusted:
            for name, tensor in new.items():
                getattr(self, name)[env_ids] = tensor
            return
        old = {name: getattr(self, name)[env_ids].clone() for name in new}
        for name, tensor in new.items():
            getattr(self, name)[env_ids] = tensor
        try:
            self.validate(env_ids)
        except TaskParamError:
            for name, tensor in old.items():
                getattr(self, name)[env_ids] = tensor
            raise

    def validate(self, env_ids: torch.Tensor) -> None:
        values = {name: getattr(self, name)[env_ids] for name in TASK_PARAM_FIELDS}
        checks = task_param_violations(values, self.success_radius_m, self.agent_half_diagonal_m)
        if not bool(torch.stack([bad for _, bad, _ in checks]).any()):  # one host sync for all rules
            return
        for name, bad, rule in checks:
            if bool(bad.any()):
                env = int(env_ids[bad.nonzero()[0, 0]])
                value = getattr(self, name)[env].tolist()
                raise TaskParamError(f"{name}: {value} is invalid for env {env}: {rule}")

    def get_range(self, name: str, env_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = getattr(self, name)[env_ids]
        return values[:, 0], values[:, 1]

    @staticmethod
    def num_reset_draws() -> int:
        """How many uniform numbers `sample_reset` consumes per env."""
        return 3 + NUM_AGENTS * SPAWN_CANDIDATES * 2 + NUM_AGENTS + NUM_AGENTS * 3

    def sample_reset(self, env_ids: torch.Tensor, draws: torch.Tensor) -> ResetState:
        """Draw MAPush's reset distribution (spec §1.3) for `env_ids` from their own parameters.

        Box at the origin at rest, yaw ~ U[0, 2pi). Target at r ~ U[target_distance_m], bearing ~ U[0, 2pi).
        Agents at r ~ U[spawn_radius_m] from the box centre, bearing and yaw ~ U[0, 2pi), planar speed
        components ~ U[-0.1, 0.1]. Unlike MAPush (spec §1.3 quirk, ~6 % of resets), the second agent is
        redrawn until the two footprints cannot overlap.

        Args:
            env_ids: (n,) envs to sample for.
            draws: (n, num_reset_draws()) uniform numbers in [0, 1) (see `mapush_rllib.task.rng`).
        """
        n = len(env_ids)
        A, K = NUM_AGENTS, SPAWN_CANDIDATES
        box_yaw, target_u, spawn_u = draws[:, 0], draws[:, 1:3], draws[:, 3 : 3 + A * K * 2]
        agent_yaw_u = draws[:, 3 + A * K * 2 : 3 + A * K * 2 + A]
        agent_vel_u = draws[:, 3 + A * K * 2 + A :]
        box_pose = torch.zeros(n, 4, device=self.device)
        box_pose[:, 2] = self.physics.box_height_m / 2
        box_pose[:, 3] = box_yaw * 2 * math.pi
        lo, hi = self.get_range("target_distance_m", env_ids)
        radius = lo + (hi - lo) * target_u[:, 0]
        bearing = target_u[:, 1] * 2 * math.pi
        target_xy = torch.stack([radius * torch.cos(bearing), radius * torch.sin(bearing)], dim=-1)

        lo, hi = self.get_range("spawn_radius_m", env_ids)
        spawn_u = spawn_u.reshape(n, A, K, 2)
        radius = lo[:, None, None] + (hi - lo)[:, None, None] * spawn_u[..., 0]
        bearing = spawn_u[..., 1] * 2 * math.pi
        xy = torch.stack([radius * torch.cos(bearing), radius * torch.sin(bearing)], dim=-1)  # (n, A, K, 2)
        first = xy[:, 0, 0]  # agent 0 takes its first candidate
        clear = (xy[:, 1] - first[:, None]).norm(dim=-1) > 2 * self.agent_half_diagonal_m  # (n, K)
        choice = torch.where(clear.any(dim=1), clear.float().argmax(dim=1), 0)
        second = xy[torch.arange(n, device=self.device), 1, choice]
        stuck = ~clear.any(dim=1)  # vanishingly rare: put agent 1 opposite agent 0
        second = torch.where(stuck[:, None], -first, second)
        agent_xy = torch.stack([first, second], dim=1)
        agent_pose = torch.cat([agent_xy, (agent_yaw_u * 2 * math.pi)[..., None]], dim=-1)
        agent_vel = (agent_vel_u.reshape(n, A, 3) * 2 - 1) * AGENT_INIT_SPEED_RANGE
        return ResetState(box_pose=box_pose, target_xy=target_xy, agent_pose=agent_pose, agent_vel=agent_vel)
