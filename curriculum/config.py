"""Typed configuration of the curriculum: the level table, the rule that moves envs between levels, the eval slice.

A *level* is one task setting: a target distance range, a box footprint and mass, and the agents' spawn
radius range. Levels are ordered from easy to hard; each env holds its own level (`scheduler.py`).

The table is either generated (`start` -> `end` in `num_levels` evenly spaced steps, the full task by
default being the end) or listed explicitly (`levels`). Rules that need no other config (ordering, box
size limit, thresholds) are checked here when the YAML is loaded; rules that depend on the task and
physics config (success radius, spawn clearance) are checked when the table is built against them
(`levels.build_level_table`). Both raise one message naming the field.

Example (YAML, under the experiment's `curriculum:` key)::

    enabled: true
    rule: pooled               # or: threshold, learnability
    start: {target_distance_m: [1.1, 1.5], box_size_m: 0.8}
    num_levels: 8              # end defaults to the task config (MAPush: 1.5-3.0 m, 1.2 m box)
    eval_fraction: 0.05        # 5 % of envs always run the full task, for the full-task success metric
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mapush_rllib.sim.config import box_mass_following_size_kg
from mapush_rllib.sim.schema import Range, StrictModel, check_range
from mapush_rllib.task.task_params import MAX_BOX_SIZE_M


class CurriculumConfigError(ValueError):
    """The curriculum config is invalid; the message names the field."""


class LevelConfig(StrictModel):
    """One level of the table: the task an env at this level trains on."""

    target_distance_m: Range = Field(description="box-to-target distance at reset, drawn uniformly from [low, high]")
    box_size_m: float = Field(gt=0, le=MAX_BOX_SIZE_M, description="side of the square box footprint")
    box_mass_kg: float | None = Field(
        None, gt=0, description="null: follows the size at MAPush's areal density (4 kg at 1.2 m)"
    )
    spawn_radius_m: Range | None = Field(
        None,
        description=(
            "agent distance from the box centre at reset; null: the task config's range shifted by the change "
            "of the box half-diagonal, so agents start as far from the box corners as in the full task"
        ),
    )

    @model_validator(mode="after")
    def _ranges(self) -> LevelConfig:
        check_range("target_distance_m", self.target_distance_m, minimum=0.0)
        if self.spawn_radius_m is not None:
            check_range("spawn_radius_m", self.spawn_radius_m, minimum=0.0)
        return self

    def resolved_box_mass_kg(self) -> float:
        return box_mass_following_size_kg(self.box_size_m) if self.box_mass_kg is None else self.box_mass_kg


def _easy_start() -> LevelConfig:
    # Target just beyond the 1 m success radius, a small (and, by areal density, light) box.
    return LevelConfig(target_distance_m=(1.1, 1.5), box_size_m=0.8)


class CurriculumConfig(StrictModel):
    """Curriculum over target distance and box size with per-env levels (see the package docstring)."""

    enabled: bool = Field(
        True, description="false: every env runs the full task (the eval slice is still reported, for comparison)"
    )
    rule: Literal["pooled", "threshold", "learnability"] = Field(
        "pooled",
        description=(
            "pooled: one frontier level for all envs, moved by each level's outcomes pooled over all envs, so "
            "progress per env step does not fall with the number of envs. threshold: per-env promote/demote from "
            "the env's own recent outcomes (legged_gym; needs min_episodes episodes per env, so it slows down as "
            "envs are added). learnability: each episode's level is sampled with probability ~ p(1-p) of its "
            "success rate p (SFL)"
        ),
    )

    # ---- the level table: generated from start/end/num_levels, or listed in `levels`
    start: LevelConfig = Field(default_factory=_easy_start, description="level 0 of a generated table")
    end: LevelConfig | None = Field(None, description="top level of a generated table; null: the task config")
    num_levels: int = Field(8, ge=2, description="levels of a generated table, start and end included")
    levels: list[LevelConfig] | None = Field(
        None, min_length=1, description="explicit table, easiest first; replaces start/end/num_levels"
    )

    # ---- pooled rule (also uses promote/demote_success_rate and top_level)
    level_episodes: int = Field(
        32, ge=1, description="outcomes of a level (pooled over all envs, its last stats_window_episodes) needed "
        "before the frontier moves past it or back from it"
    )
    probe_share: float = Field(
        0.2, ge=0, le=1, description="share of episodes played at a level drawn uniformly from the table, so "
        "every level's success stays measured; the others play the frontier"
    )

    # ---- threshold rule
    initial_level_max: int = Field(
        0, ge=0, description="each env starts at a level drawn uniformly from 0..initial_level_max"
    )
    window_episodes: int = Field(4, ge=1, description="per-env window of recent outcomes at the current level")
    min_episodes: int = Field(
        2, ge=1, description="outcomes needed at the current level before the env may move (its dwell time)"
    )
    promote_success_rate: float = Field(0.75, gt=0, le=1, description="promote when the window's rate is >= this")
    demote_success_rate: float = Field(0.25, ge=0, lt=1, description="demote when the window's rate is <= this")
    top_level: Literal["whole_range", "stay"] = Field(
        "whole_range",
        description=(
            "whole_range: an env at the top level plays a level drawn uniformly from the whole table each "
            "episode, so easier skills are not forgotten. stay: it plays the top level only"
        ),
    )

    # ---- learnability rule
    learnability_uniform_mix: float = Field(
        0.1, ge=0, le=1, description="share of episodes whose level is drawn uniformly instead (exploration)"
    )

    # ---- statistics and the evaluation slice
    stats_window_episodes: int = Field(
        100, ge=1, description="rolling window of outcomes per level and of the eval slice (metrics, learnability)"
    )
    eval_fraction: float = Field(
        0.05,
        ge=0,
        lt=1,
        description=(
            "share of envs that always run the full task and only measure it; costs this share of samples. "
            "Env with global id g is one iff floor((g+1)f) > floor(g f), i.e. every (1/f)-th env"
        ),
    )

    @field_validator("initial_level_max")
    @classmethod
    def _initial_level_exists(cls, value: int, info: ValidationInfo) -> int:
        levels, num_levels = info.data.get("levels"), info.data.get("num_levels")
        count = len(levels) if levels is not None else num_levels
        if count is not None and value >= count:
            raise ValueError(f"{value} is not a level; the table has levels 0..{count - 1}")
        return value

    @field_validator("min_episodes")
    @classmethod
    def _fits_window(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("window_episodes")
        if window is not None and value > window:
            raise ValueError(f"{value} exceeds window_episodes {window}; the window can never hold that many outcomes")
        return value

    @field_validator("demote_success_rate")
    @classmethod
    def _below_promote(cls, value: float, info: ValidationInfo) -> float:
        promote = info.data.get("promote_success_rate")
        if promote is not None and value >= promote:
            raise ValueError(
                f"{value} must be below promote_success_rate {promote} (the gap between them is the hysteresis band)"
            )
        return value

    @model_validator(mode="after")
    def _pooled_window_fits(self) -> CurriculumConfig:
        if self.rule == "pooled" and self.level_episodes > self.stats_window_episodes:
            raise ValueError(
                f"level_episodes: {self.level_episodes} exceeds stats_window_episodes {self.stats_window_episodes}; "
                "a level's window can never hold that many outcomes"
            )
        return self

    @model_validator(mode="after")
    def _one_table(self) -> CurriculumConfig:
        # Compared with the defaults, not with the fields set, so a dumped config validates again.
        defaults = {name: CurriculumConfig.model_fields[name].get_default(call_default_factory=True)
                    for name in ("start", "end", "num_levels")}
        generated = [name for name, default in defaults.items() if getattr(self, name) != default]
        if self.levels is not None and generated:
            raise ValueError(f"levels: give either levels or {generated}, not both")
        if self.levels is not None:
            check_level_order([level_key(level) for level in self.levels], "levels")
        elif self.end is not None:
            check_level_order([level_key(self.start), level_key(self.end)], "", names=["start", "end"])
        return self


#: What makes a level harder, as (field, which value): none of these may decrease from one level to the next.
DIFFICULTY_FIELDS = (
    ("target_distance_m", "low "), ("target_distance_m", "high "), ("box_size_m", ""), ("box_mass_kg", ""),
)


def level_key(level: LevelConfig) -> tuple[float, float, float, float]:
    """A level's values in DIFFICULTY_FIELDS order."""
    low, high = level.target_distance_m
    return (low, high, level.box_size_m, level.resolved_box_mass_kg())


def check_level_order(keys: list[tuple[float, ...]], prefix: str, names: list[str] | None = None) -> None:
    """Raise ValueError naming the first level that is easier than the one before it in some field.

    Levels are named `names[i]`, or `<prefix>.<i>` (pydantic's path notation, e.g. `levels.2`).
    """
    names = names or [f"{prefix}.{i}" for i in range(len(keys))]
    for i in range(1, len(keys)):
        for (field, which), before, now in zip(DIFFICULTY_FIELDS, keys[i - 1], keys[i], strict=True):
            if now < before:
                raise ValueError(
                    f"{names[i]}.{field}: {which}{now:g} is below {names[i - 1]}'s {before:g}; each level must be "
                    "no easier than the one before it (target distance, box size and mass never decrease)"
                )
