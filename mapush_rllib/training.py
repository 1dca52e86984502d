"""PPO settings as a typed schema, and the one function that turns them into RLlib's `PPOConfig`.

Defaults follow MAPush's mid-level training (spec §4.1 OpenRL PPO, §4.4 HARL HAPPO) where they carry
over to RLlib, and say where they differ:
- rollout of 200 policy steps per env per iteration, gamma 0.99, GAE lambda 0.95, clip 0.2, lr 5e-4,
  gradient-norm clip 10, MLP actor/critic [64, 64] ReLU;
- 5 epochs (HARL; OpenRL uses 10) over 4 minibatches (MAPush uses 1 full-batch step per epoch, which
  gives few updates per sample on a CPU budget);
- entropy 0.001 and initial action std 0.61 (log-std -0.5). MAPush's 0.01 and std 1 (OpenRL) made the
  std grow steadily here (RLlib standardises advantages, MAPush does not), and learning was slower:
  on the default task, 2 % success after 2.5 M env steps against 18 % with these values (HARL starts
  its std at 0.37). With the curriculum, MAPush's values did better at 10 M env steps, and
  `configs/single.yaml` sets them (README, Curriculum: the curriculum's policies lose entropy early here);
- RLlib always standardises advantages (MAPush: off) and has no value normalisation; its value-loss
  clip applies to the *squared* error, so the default here is large enough (1000) not to cut off the
  success bonus of 10 that the critic must learn.

Policies: `policy_0` for `agent_0` and `policy_1` for `agent_1`, each with its own optimizer, entropy
coefficient and learning rate (`per_module`), or with `share_policy` one `shared_policy` for both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import gymnasium as gym
from pydantic import Field, ValidationInfo, field_validator, model_validator
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from mapush_rllib.env import ENV_CONFIG_REWARDS, MAPushMultiAgentEnv, TaskScheduleFactory, make_env_config
from mapush_rllib.env import action_space as env_action_space
from mapush_rllib.env import observation_space as env_observation_space
from mapush_rllib.models import MAPushActorCritic
from mapush_rllib.sim.config import NUM_AGENTS, SimConfig
from mapush_rllib.sim.schema import StrictModel
from mapush_rllib.task.config import AGENT_IDS, REWARD_TERMS, RewardConfig, TaskConfig, agent_index
from mapush_rllib.task.observations import OBS_DIM

SEPARATE_POLICY_IDS = tuple(f"policy_{i}" for i in range(NUM_AGENTS))
SHARED_POLICY_ID = "shared_policy"


#: TrainingConfig fields that are `PPOConfig.training()` settings, and their keyword there.
PPO_SETTINGS = {
    "lr": "lr",
    "gamma": "gamma",
    "gae_lambda": "lambda_",
    "clip_param": "clip_param",
    "entropy_coeff": "entropy_coeff",
    "vf_loss_coeff": "vf_loss_coeff",
    "vf_clip_param": "vf_clip_param",
    "grad_clip": "grad_clip",
}
#: Per-policy overrides (`training.per_module.<policy>.<field>`) and their keyword in `PPOConfig.overrides()`.
PER_MODULE_SETTINGS = {"lr": "lr", "entropy_coeff": "entropy_coeff"}


def config_dict_path(experiment_path: str) -> str:
    """Where a value of the experiment lives in a member's `PPOConfig.to_dict()` (the config Tune hands a trial).

    The one translation between the two languages: experiment paths (`rewards.per_agent_scales.agent_0.ocb`,
    `training.per_module.policy_1.entropy_coeff`) are what users write and read; config-dict paths are what Tune
    mutates. Raises ValueError for a path that has no single place there.
    """
    parts = experiment_path.split(".")
    if parts[0] == "rewards" and len(parts) >= 3 and parts[-1] in REWARD_TERMS:
        return f"env_config.{ENV_CONFIG_REWARDS}.{'.'.join(parts[1:])}"
    if parts[0] == "training" and len(parts) == 2 and parts[1] in PPO_SETTINGS:
        keyword = PPO_SETTINGS[parts[1]]
        return "lambda" if keyword == "lambda_" else keyword  # to_dict() writes `lambda_` as "lambda"
    if parts[:2] == ["training", "per_module"] and len(parts) == 4 and parts[3] in PER_MODULE_SETTINGS:
        return f"algorithm_config_overrides_per_module.{parts[2]}.{PER_MODULE_SETTINGS[parts[3]]}"
    raise ValueError(
        f"{experiment_path}: not a single value of the trial config; use rewards.scales.<term>, "
        f"rewards.per_agent_scales.<agent>.<term>, training.<{'|'.join(PPO_SETTINGS)}> or "
        f"training.per_module.<policy>.<{'|'.join(PER_MODULE_SETTINGS)}>"
    )


class ConfigError(ValueError):
    """A training configuration that cannot work; the message names the field."""


class ModelConfig(StrictModel):
    """Actor and critic MLPs (`mapush_rllib.models.MAPushActorCritic`)."""

    hidden_sizes: list[int] = Field([64, 64], min_length=1, description="MAPush/OpenRL: hidden 64, 2 layers")
    activation: Literal["tanh", "relu", "elu"] = "relu"
    initial_log_std: float = Field(-0.5, description="log of the initial action std (MAPush/OpenRL: 0, std 1)")

    @model_validator(mode="after")
    def _positive_sizes(self) -> ModelConfig:
        if any(size <= 0 for size in self.hidden_sizes):
            raise ValueError(f"hidden_sizes: every layer needs a positive width, got {self.hidden_sizes}")
        return self


class ModuleOverrides(StrictModel):
    """Settings of one policy that differ from the training section's."""

    entropy_coeff: float | None = Field(None, ge=0)
    lr: float | None = Field(None, gt=0)


class TrainingConfig(StrictModel):
    """How the policies are trained: PPO hyperparameters, policy layout, env runner."""

    share_policy: bool = Field(False, description="one shared_policy for both agents (MAPPO baseline)")
    central_critic: bool = Field(False, description="critics also see the 17-D global state (CTDE)")
    runner: Literal["batched", "stock"] = Field(
        "batched", description="batched: one simulator call per step for all envs; stock: RLlib's runner"
    )
    learner_batch: Literal["episodes", "bulk"] = Field(
        "episodes",
        description=(
            "episodes: the runner returns RLlib episode chunks, RLlib's learner connectors build the training batch "
            "(Python work per chunk); bulk (batched runner only): the runner hands its rollout tensors to the "
            "learner, which builds the same batch with tensor ops on its device (needed at thousands of envs)"
        ),
    )
    num_env_runners: int = Field(0, ge=0, description="remote env runners; 0 samples in the trial's process")
    rollout_steps: int = Field(200, gt=0, description="policy steps per env per iteration (MAPush: 200)")
    num_minibatches: int = Field(4, gt=0, description="minibatches per epoch")
    num_epochs: int = Field(5, gt=0)
    lr: float = Field(5e-4, gt=0)
    gamma: float = Field(0.99, gt=0, le=1)
    gae_lambda: float = Field(0.95, ge=0, le=1)
    clip_param: float = Field(0.2, gt=0)
    entropy_coeff: float = Field(0.001, ge=0, description="MAPush: 0.01 (see the module docstring)")
    vf_loss_coeff: float = Field(1.0, ge=0)
    vf_clip_param: float = Field(1000.0, gt=0, description="clip of the squared value error")
    grad_clip: float = Field(10.0, gt=0, description="max global gradient norm")
    model: ModelConfig = Field(default_factory=ModelConfig)
    per_module: dict[str, ModuleOverrides] = Field(
        default_factory=dict, description="per-policy overrides, e.g. {policy_1: {entropy_coeff: 0.02}}"
    )
    metrics_window_episodes: int = Field(
        500, gt=0, description="episodes (per env runner) averaged in the task metrics and RLlib's episode metrics"
    )

    @field_validator("per_module")
    @classmethod
    def _known_policies(cls, per_module: dict[str, ModuleOverrides], info: ValidationInfo) -> dict:
        share_policy = info.data.get("share_policy", False)
        valid = (SHARED_POLICY_ID,) if share_policy else SEPARATE_POLICY_IDS
        unknown = sorted(set(per_module) - set(valid))
        if unknown:
            raise ValueError(
                f"unknown policy id(s) {unknown}; with share_policy={share_policy} the policies are {list(valid)}"
            )
        return per_module

    @model_validator(mode="after")
    def _bulk_needs_batched_runner(self) -> TrainingConfig:
        if self.learner_batch == "bulk" and self.runner != "batched":
            raise ValueError("learner_batch: 'bulk' needs runner: batched (the stock runner returns episodes)")
        return self

    @property
    def policy_ids(self) -> tuple[str, ...]:
        return (SHARED_POLICY_ID,) if self.share_policy else SEPARATE_POLICY_IDS

    def policy_for(self, agent_id: str) -> str:
        return SHARED_POLICY_ID if self.share_policy else map_agent_to_own_policy(agent_id)


def map_agent_to_own_policy(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    """agent_i -> policy_i."""
    return SEPARATE_POLICY_IDS[agent_index(agent_id)]


def map_agent_to_shared_policy(agent_id: str, episode: Any = None, **kwargs: Any) -> str:
    return SHARED_POLICY_ID


def build_ppo_config(
    training: TrainingConfig,
    sim: SimConfig,
    task: TaskConfig,
    rewards: RewardConfig,
    *,
    seed: int,
    task_schedule_factory: TaskScheduleFactory | None = None,
    env_config_extra: dict | None = None,
    callbacks: Sequence[type[RLlibCallback]] = (),
) -> PPOConfig:
    """The PPOConfig of a MAPush training run, checked with `check_ppo_config` (no Ray needed).

    Every env runner owns `sim.num_envs` envs; one iteration samples `rollout_steps` steps of each.
    `callbacks` run after `MAPushCallbacks` (task metrics, live settings), e.g. a curriculum's.
    """
    from mapush_rllib.algorithm import MAPushPPO
    from mapush_rllib.callbacks import MAPushCallbacks
    from mapush_rllib.runner import BatchedEnvRunner

    num_envs = sim.num_envs
    env_config = make_env_config(
        sim, task, rewards, seed=seed, central_critic=training.central_critic,
        task_schedule_factory=task_schedule_factory, **(env_config_extra or {}),
    )
    obs_space = env_observation_space(training.central_critic)
    model_config = {
        **training.model.model_dump(),
        "actor_obs_dim": OBS_DIM,  # the actor never sees the global state
    }
    agents_per_policy = NUM_AGENTS // len(training.policy_ids)
    env_steps_per_iteration = training.rollout_steps * num_envs * max(1, training.num_env_runners)
    rows_per_module = env_steps_per_iteration * agents_per_policy
    config = (
        PPOConfig(algo_class=MAPushPPO)
        .framework("torch")
        .environment(MAPushMultiAgentEnv, env_config=env_config, disable_env_checking=True)
        .env_runners(
            num_env_runners=training.num_env_runners,
            num_envs_per_env_runner=num_envs,
            rollout_fragment_length=training.rollout_steps,
            env_runner_cls=BatchedEnvRunner if training.runner == "batched" else None,
        )
        .multi_agent(
            policies=set(training.policy_ids),
            policy_mapping_fn=map_agent_to_shared_policy if training.share_policy else map_agent_to_own_policy,
        )
        .rl_module(
            algorithm_config_overrides_per_module={
                module_id: PPOConfig.overrides(**overrides.model_dump(exclude_none=True))
                for module_id, overrides in training.per_module.items()
                if overrides.model_dump(exclude_none=True)
            },
            rl_module_spec=MultiRLModuleSpec(
                rl_module_specs={
                    module_id: RLModuleSpec(
                        module_class=MAPushActorCritic,
                        observation_space=obs_space,
                        action_space=env_action_space(),
                        model_config=model_config,
                    )
                    for module_id in training.policy_ids
                }
            )
        )
        .training(
            train_batch_size_per_learner=env_steps_per_iteration,
            # Rows per module; RLlib caps a minibatch at one iteration's env steps, so a shared policy
            # (two rows per env step) takes at least 2 minibatches per epoch.
            minibatch_size=max(1, min(rows_per_module // training.num_minibatches, env_steps_per_iteration)),
            num_epochs=training.num_epochs,
            **{keyword: getattr(training, name) for name, keyword in PPO_SETTINGS.items()},
            grad_clip_by="global_norm",
            use_kl_loss=False,
        )
        .learners(num_learners=0, **_learner_batch_settings(training))
        .callbacks([MAPushCallbacks, *callbacks])
        .reporting(metrics_num_episodes_for_smoothing=training.metrics_window_episodes)
        .debugging(seed=seed)
    )
    check_ppo_config(config)
    return config


def _learner_batch_settings(training: TrainingConfig) -> dict:
    """`learners()` settings of the bulk learner batch: its learner class, and the flag the runner reads."""
    if training.learner_batch != "bulk":
        return {}
    from mapush_rllib.learner import MAPushPPOLearner
    from mapush_rllib.rollout_batch import BULK_LEARNER_BATCH

    return {"learner_class": MAPushPPOLearner, "learner_config_dict": {BULK_LEARNER_BATCH: True}}


def check_ppo_config(config: PPOConfig) -> None:
    """Fail before Ray starts on settings RLlib would only reject (or misuse) inside a trial.

    Checks: every agent maps to a declared policy; each policy's module spaces equal the env spaces of
    every agent mapped to it; batch sizes are positive. Raises ConfigError naming the field.
    """
    if config.train_batch_size_per_learner is None or config.train_batch_size_per_learner <= 0:
        raise ConfigError(f"train_batch_size_per_learner: must be positive, got {config.train_batch_size_per_learner}")
    if config.minibatch_size is not None and config.minibatch_size <= 0:
        raise ConfigError(f"minibatch_size: must be positive, got {config.minibatch_size}")
    if config.minibatch_size is not None and config.minibatch_size > config.train_batch_size_per_learner:
        raise ConfigError(
            f"minibatch_size: {config.minibatch_size} is larger than train_batch_size_per_learner "
            f"{config.train_batch_size_per_learner}"
        )
    rollout = config.rollout_fragment_length
    if rollout != "auto" and rollout <= 0:
        raise ConfigError(f"rollout_fragment_length: must be positive, got {rollout}")
    if config.num_envs_per_env_runner <= 0:
        raise ConfigError(f"num_envs_per_env_runner: must be positive, got {config.num_envs_per_env_runner}")

    env_config = config.env_config
    env_obs = env_observation_space(bool(env_config.get("central_critic", False)))
    env_act = env_action_space()
    specs = config.rl_module_spec.rl_module_specs if config.rl_module_spec else {}
    for agent_id in AGENT_IDS:
        module_id = config.policy_mapping_fn(agent_id, None)
        if module_id not in config.policies:
            raise ConfigError(
                f"policy_mapping_fn: maps {agent_id} to unknown policy id {module_id!r}; "
                f"declared policies: {sorted(config.policies)}"
            )
        spec = specs.get(module_id)
        if spec is None:
            continue
        for name, module_space, env_space in (
            ("observation_space", spec.observation_space, env_obs),
            ("action_space", spec.action_space, env_act),
        ):
            if module_space is not None and not _same_space(module_space, env_space):
                raise ConfigError(
                    f"rl_module_specs.{module_id}.{name}: {module_space} does not match the env's "
                    f"{name} {env_space} of {agent_id}"
                )


def _same_space(a: gym.Space, b: gym.Space) -> bool:
    return type(a) is type(b) and a.shape == b.shape and a.dtype == b.dtype and a == b


def policy_mapping(config: PPOConfig) -> dict[str, str]:
    """agent id -> module id, as the config maps them (static per agent)."""
    return {agent_id: config.policy_mapping_fn(agent_id, None) for agent_id in AGENT_IDS}

