"""The experiment file: one YAML, one typed schema, validated before anything starts.

    simulator:  SimConfig       which simulator, how many envs per env runner, physics
    task:       TaskConfig      target distance, box, spawn, episode length (MAPush defaults)
    rewards:    RewardConfig    the reward scales (MAPush's seven, own_push, joint_push) and credit assignment
    training:   TrainingConfig  PPO, policy layout (separate / shared, central critic), env runner
    curriculum: CurriculumConfig per-env levels of target distance and box size (on by default)
    run:        RunConfig       name, seed, stop condition, checkpoints, storage, resources

Every section has MAPush defaults, so `{}` is a valid (if long) experiment. Further sections (e.g. a
population) are added as fields of `ExperimentConfig`. The curriculum's levels are checked against the
task and physics sections when the file is loaded (`build_level_table`), so a level the simulator would
reject fails here, naming `curriculum.<field>`, before Ray starts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from curriculum import CurriculumConfig, CurriculumConfigError, build_level_table
from mapush_rllib.evaluation import EvaluationConfig
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.sim.schema import StrictModel, format_validation_error, load_yaml
from mapush_rllib.task.config import RewardConfig, TaskConfig
from mapush_rllib.task.task_params import task_config_problems
from mapush_rllib.training import TrainingConfig
from population.pbt_config import PBTConfig, resolved_mutations


class ExperimentConfigError(ValueError):
    """The experiment file cannot be used; the message has one line per problem, each naming its field."""


class StopConfig(StrictModel):
    """When a run ends: the first limit reached (at least one must be set)."""

    training_iterations: int | None = Field(None, gt=0)
    env_steps: int | None = Field(None, gt=0, description="env steps sampled, summed over env runners")
    time_s: float | None = Field(
        None, gt=0,
        description="seconds a member spent in training iterations (Tune's time_total_s, kept across --resume); "
                    "its evaluations, checkpoints and start-up are not counted",
    )

    @model_validator(mode="after")
    def _some_limit(self) -> StopConfig:
        if self.training_iterations is None and self.env_steps is None and self.time_s is None:
            raise ValueError("set at least one of training_iterations, env_steps, time_s")
        return self


class ResourcesConfig(StrictModel):
    """What one trial asks Ray for. Fractions let several trials share a small machine."""

    cpus: float = Field(1.0, gt=0, description="CPUs of the trial process (learner and local env runner)")
    cpus_per_env_runner: float = Field(1.0, gt=0, description="CPUs of each remote env runner")
    gpus: float = Field(0.0, ge=0, description="GPUs of the learner")
    ray_num_cpus: int | None = Field(None, gt=0, description="CPUs Ray may schedule on (default: all)")


class RunConfig(StrictModel):
    """Bookkeeping of a run: where it is written, when it stops, how often it checkpoints."""

    name: str = Field("single", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    stop: StopConfig = Field(default_factory=lambda: StopConfig(training_iterations=100))
    checkpoint_every_iterations: int = Field(10, gt=0)
    checkpoints_to_keep: int | None = Field(
        5, gt=0, description="per member, this many newest checkpoints (what --resume and PBT copies take) and as "
        "many best by their own evaluation; null: all"
    )
    storage: str = Field("runs", min_length=1, description="directory of Tune's experiment folders")
    dashboard: bool = Field(False, description="start Ray's dashboard with a local run (http://127.0.0.1:8265)")
    dashboard_port: int = Field(8265, ge=1024, le=65535)
    max_failures: int = Field(
        3, ge=0, description="times a crashed member is restored from its last checkpoint before the run gives up"
    )
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    initial_policy: str | None = Field(
        None,
        description=(
            "start every member's policies from this checkpoint's weights (a checkpoint folder, or a trial or run "
            "folder: its newest complete checkpoint), not its optimizer or curriculum; null: random weights"
        ),
    )

    @field_validator("initial_policy")
    @classmethod
    def _checkpoint_exists(cls, value: str | None) -> str | None:
        if value is not None:
            from mapush_rllib.checkpoint_policy import find_checkpoint
            from mapush_rllib.checkpoints import CheckpointError

            try:
                find_checkpoint(value, what=None)
            except CheckpointError as error:
                raise ValueError(str(error)) from None
        return value


class ExperimentConfig(StrictModel):
    """A whole experiment (see the module docstring)."""

    simulator: SimConfig = Field(default_factory=SimConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    rewards: RewardConfig = Field(default_factory=RewardConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    curriculum: CurriculumConfig = Field(
        default_factory=CurriculumConfig, description="enabled: false trains on the full task (metrics kept)"
    )
    run: RunConfig = Field(default_factory=RunConfig)
    pbt: PBTConfig | None = Field(None, description="population-based training; absent: one member, no PBT")
    evaluation: EvaluationConfig = Field(
        default_factory=EvaluationConfig, description="the member's own evaluation: what ranking and claims use"
    )

    def resolved_evaluation(self) -> EvaluationConfig:
        """The evaluation with its defaults filled in: at every PBT decision (every 10 iterations without PBT)."""
        return self.evaluation.resolved(self.simulator.num_envs, self.pbt.perturbation_interval if self.pbt else 10)

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        problems = task_config_problems(self.task, self.simulator.physics)
        if problems:
            raise ValueError("\n".join(problems))
        if self.evaluation.num_envs is not None and self.evaluation.num_envs > self.simulator.num_envs:
            raise ValueError(
                f"evaluation.num_envs: {self.evaluation.num_envs} is more than the {self.simulator.num_envs} envs "
                "the member trains with (simulator.num_envs); lower it or raise simulator.num_envs"
            )
        if self.evaluation.asynchronous:
            interval, lead = self.resolved_evaluation().interval_iterations, self.evaluation.lead_iterations
            every = self.run.checkpoint_every_iterations
            if lead >= interval:
                raise ValueError(
                    f"evaluation.lead_iterations: {lead} is not less than the {interval} iterations between "
                    "evaluations (evaluation.interval_iterations, null: pbt.perturbation_interval): the policies "
                    "handed over must be judged by the next decision; lower it"
                )
            if lead % every or interval % every:
                raise ValueError(
                    f"evaluation.lead_iterations: the policies it evaluates (iterations D - {lead}, D every "
                    f"{interval}) must have checkpoints, saved every {every} iterations "
                    "(run.checkpoint_every_iterations): make "
                    "lead_iterations and the evaluation interval multiples of it"
                )
            keep = self.run.checkpoints_to_keep
            if keep is not None and keep * every < lead:
                raise ValueError(
                    f"run.checkpoints_to_keep: the newest {keep} checkpoints, one every {every} iterations, do not "
                    f"reach back the {lead} iterations of evaluation.lead_iterations: the checkpoint of the policies "
                    "handed over would be deleted before their evaluation comes back. Keep more (or null: keep all)"
                )
        members = self.pbt.population_size if self.pbt is not None else 1
        if self.run.seed <= self.evaluation.seed < self.run.seed + members:
            raise ValueError(
                f"evaluation.seed: {self.evaluation.seed} is a training seed (members train with run.seed "
                f"{self.run.seed} .. {self.run.seed + members - 1}); evaluation episodes must be held out"
            )
        if self.pbt is None:
            return self
        resolved_mutations(self)  # raises naming pbt.<field> for impossible mutations
        every_eval = self.resolved_evaluation().interval_iterations
        first, interval = max(self.pbt.perturbation_interval, self.pbt.burn_in), self.pbt.perturbation_interval
        if first % every_eval or interval % every_eval:
            field = "pbt.perturbation_interval" if interval % every_eval else "pbt.burn_in"
            raise ValueError(
                f"{field}: PBT decides at iterations {first}, {first + interval}, ... and members evaluate "
                f"themselves every {every_eval} (evaluation.interval_iterations), so decisions would rank on old "
                "scores; make pbt.burn_in and pbt.perturbation_interval multiples of evaluation.interval_iterations "
                "(null: the interval)"
            )
        keep, every = self.run.checkpoints_to_keep, self.run.checkpoint_every_iterations
        if keep is not None and keep < 4:
            raise ValueError(
                f"run.checkpoints_to_keep: {keep} is too few for PBT (a member copies another's checkpoint, "
                "which must still exist); use null (keep all) or at least 4"
            )
        if keep is not None and keep * every <= self.pbt.perturbation_interval:
            raise ValueError(
                f"run.checkpoints_to_keep: the newest {keep} checkpoints, one every {every} iterations "
                f"(run.checkpoint_every_iterations), do not reach back a whole pbt.perturbation_interval "
                f"({self.pbt.perturbation_interval}): a member copies the checkpoint its donor saved at its last "
                "decision. Keep more or checkpoint more often (or null: keep all)"
            )
        return self

    @model_validator(mode="after")
    def _levels_fit_the_task(self) -> ExperimentConfig:
        try:
            build_level_table(self.curriculum, self.task, self.simulator.physics)
        except CurriculumConfigError as error:
            raise ValueError(str(error)) from None  # the message starts with the field, e.g. curriculum.levels.2...
        return self


def load_experiment(
    path: str | Path, *, storage: str | None = None, overrides: Sequence[str] = ()
) -> ExperimentConfig:
    """Read and validate an experiment YAML; `storage` overrides `run.storage`.

    `overrides` are `dotted.key=value` settings applied on top of the file, the value read as YAML
    (e.g. `curriculum.enabled=false`, `run.name=no_curriculum`, `task.target_distance_m=[1.5, 2.0]`).

    Raises ExperimentConfigError with one line per problem (`field.path: message (got value)`).
    """
    path = Path(path)
    try:
        data = load_yaml(path.read_text())
    except FileNotFoundError:
        raise ExperimentConfigError(f"{path}: no such file") from None
    except yaml.YAMLError as error:
        raise ExperimentConfigError(f"{path}: not valid YAML: {error}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ExperimentConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    if storage is not None:
        overrides = [*overrides, f"run.storage={json.dumps(storage)}"]
    for override in overrides:
        _apply_override(data, override, path)
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as error:
        raise ExperimentConfigError(f"{path}:\n{format_validation_error(error)}") from None


def _apply_override(data: dict, override: str, path: Path) -> None:
    """Set `data[a][b][c] = value` for "a.b.c=value", creating missing sections."""
    key, separator, text = override.partition("=")
    if not separator or not key.strip():
        raise ExperimentConfigError(f"{path}: override {override!r}: expected dotted.key=value")
    try:
        value = load_yaml(text)
    except yaml.YAMLError as error:
        raise ExperimentConfigError(f"{path}: override {key}: the value is not valid YAML: {error}") from None
    *parents, leaf = key.strip().split(".")
    node = data
    for depth, name in enumerate(parents):
        node = node.setdefault(name, {})
        if not isinstance(node, dict):
            raise ExperimentConfigError(f"{path}: override {key}: {'.'.join(parents[: depth + 1])} is not a mapping")
    node[leaf] = value
