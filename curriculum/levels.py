"""The level table: every level's task parameters as tensors, plus the full task that the eval slice runs.

Row k < num_levels is level k; row `num_levels` (`LevelTable.full_task_row`) is the full task, taken
from the task config. Looking up a batch of rows gives the `task_params` dict that `MAPushVecEnv` applies
at reset, so choosing tasks for any number of envs is one gather.

A generated table interpolates linearly from `start` to `end` (the full task by default) in target
distance low and high, box size, spawn radius and box *areal density*; with MAPush's density at both ends,
box mass therefore follows size (4 kg at 1.2 m). Every row is checked with the simulator's own rules
(`mapush_rllib.task.task_params.task_param_violations`), so a table the simulator would reject fails here,
at config time, with the curriculum field named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from curriculum.config import CurriculumConfig, CurriculumConfigError, LevelConfig, check_level_order
from mapush_rllib.sim.config import PhysicsConfig
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.task_params import TASK_PARAM_FIELDS, agent_half_diagonal_m, task_param_violations


@dataclass(frozen=True)
class LevelTable:
    """Task parameters of R = num_levels + 1 rows (the levels, then the full task)."""

    target_distance_m: torch.Tensor  # (R, 2)
    box_size_m: torch.Tensor  # (R,)
    box_mass_kg: torch.Tensor  # (R,)
    spawn_radius_m: torch.Tensor  # (R, 2)

    @property
    def num_levels(self) -> int:
        return int(self.box_size_m.shape[0]) - 1

    @property
    def full_task_row(self) -> int:
        return self.num_levels

    def params(self, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task parameters of the given rows, (n,) -> TASK_PARAM_FIELDS dict of (n, 2) / (n,) tensors."""
        return {name: getattr(self, name)[rows] for name in TASK_PARAM_FIELDS}

    def to(self, device: torch.device | str) -> LevelTable:
        return LevelTable(**{name: getattr(self, name).to(device) for name in TASK_PARAM_FIELDS})

    def as_tensor(self) -> torch.Tensor:
        """(R, 6) float32: target low/high, box size, box mass, spawn low/high. Stored in checkpoints."""
        return torch.cat(
            [self.target_distance_m, self.box_size_m[:, None], self.box_mass_kg[:, None], self.spawn_radius_m], dim=1
        )

    def describe(self) -> list[str]:
        """One line per row, for logs."""
        return describe_rows(self.as_tensor())


def describe_rows(table: torch.Tensor) -> list[str]:
    """Lines for an (R, 6) `LevelTable.as_tensor()`, e.g. one read from a checkpoint."""
    lines = []
    for row, values in enumerate(table.tolist()):
        name = "full task" if row == len(table) - 1 else f"level {row}"
        lines.append(
            f"{name}: target {values[0]:.2f}-{values[1]:.2f} m, box {values[2]:.2f} m / {values[3]:.2f} kg, "
            f"spawn {values[4]:.2f}-{values[5]:.2f} m"
        )
    return lines


def build_level_table(config: CurriculumConfig, task: TaskConfig, physics: PhysicsConfig) -> LevelTable:
    """Resolve the config's levels against the task and physics config, and check them.

    Raises:
        CurriculumConfigError: one line naming the field, e.g. `curriculum.levels.2.spawn_radius_m: ...`.
    """
    full = _resolve(LevelConfig(
        target_distance_m=task.target_distance_m,
        box_size_m=task.box_size_m,
        box_mass_kg=task.resolved_box_mass_kg(),
        spawn_radius_m=task.spawn_radius_m,
    ), task)
    if config.levels is not None:
        rows = [_resolve(level, task) for level in config.levels]
        names = [f"curriculum.levels.{i}" for i in range(len(rows))]
    else:
        start = _resolve(config.start, task)
        end = full if config.end is None else _resolve(config.end, task)
        end_name = "task" if config.end is None else "curriculum.end"
        try:
            check_level_order([_key(start), _key(end)], "", names=["curriculum.start", end_name])
        except ValueError as error:
            raise CurriculumConfigError(str(error)) from None
        rows = [_interpolate(start, end, i / (config.num_levels - 1)) for i in range(config.num_levels)]
        names = ["curriculum.start"] + [f"curriculum (generated level {i})" for i in range(1, len(rows) - 1)]
        names.append(end_name)
    table = LevelTable(*(
        torch.tensor([row[i] for row in rows + [full]], dtype=torch.float32) for i in range(4)
    ))
    _check(table, names + ["task"], task, physics)
    return table


# A resolved level: (target_distance_m (2,), box_size_m, box_mass_kg, spawn_radius_m (2,)) as Python floats.
_Row = tuple[list[float], float, float, list[float]]


def _resolve(level: LevelConfig, task: TaskConfig) -> _Row:
    size = level.box_size_m
    if level.spawn_radius_m is not None:
        spawn = list(level.spawn_radius_m)
    else:  # keep the full task's clearance between the agents' spawn circle and the box corners
        shift = (size - task.box_size_m) / math.sqrt(2)
        spawn = [task.spawn_radius_m[0] + shift, task.spawn_radius_m[1] + shift]
    return list(level.target_distance_m), size, level.resolved_box_mass_kg(), spawn


def _interpolate(start: _Row, end: _Row, t: float) -> _Row:
    lerp = lambda a, b: a * (1 - t) + b * t  # noqa: E731  (exact at t = 0 and t = 1)
    size = lerp(start[1], end[1])
    density = lerp(start[2] / start[1] ** 2, end[2] / end[1] ** 2)
    return (
        [lerp(start[0][0], end[0][0]), lerp(start[0][1], end[0][1])],
        size,
        end[2] if t == 1 else start[2] if t == 0 else density * size**2,
        [lerp(start[3][0], end[3][0]), lerp(start[3][1], end[3][1])],
    )


def _key(row: _Row) -> tuple[float, float, float, float]:
    return row[0][0], row[0][1], row[1], row[2]


def _check(table: LevelTable, names: list[str], task: TaskConfig, physics: PhysicsConfig) -> None:
    values = table.params(torch.arange(table.num_levels + 1))
    for field, bad, rule in task_param_violations(values, task.success_radius_m, agent_half_diagonal_m(physics)):
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            shown = [round(v, 4) for v in values[field][row].reshape(-1).tolist()]
            shown = shown[0] if len(shown) == 1 else shown
            raise CurriculumConfigError(f"{names[row]}.{field}: {shown} is invalid: {rule}")
