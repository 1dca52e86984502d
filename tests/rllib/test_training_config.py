"""Training settings become the intended PPOConfig, and wrong settings fail before Ray starts."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from pydantic import ValidationError
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from mapush_rllib.models import MAPushActorCritic
from mapush_rllib.runner import BatchedEnvRunner
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.sim.schema import format_validation_error
from mapush_rllib.task.config import RewardConfig, TaskConfig
from mapush_rllib.training import ConfigError, TrainingConfig, build_ppo_config, check_ppo_config, policy_mapping


def build(**training: object):
    return build_ppo_config(TrainingConfig(**training), SimConfig(num_envs=8), TaskConfig(), RewardConfig(), seed=3)


def error_text(**training: object) -> str:
    with pytest.raises(ValidationError) as info:
        TrainingConfig.model_validate(training)
    return format_validation_error(info.value)


def test_separate_policies_with_their_own_settings() -> None:
    config = build(per_module={"policy_1": {"entropy_coeff": 0.03, "lr": 1e-3}}, rollout_steps=50, num_minibatches=4)
    assert policy_mapping(config) == {"agent_0": "policy_0", "agent_1": "policy_1"}
    assert set(config.policies) == {"policy_0", "policy_1"}
    assert config.get_config_for_module("policy_0").entropy_coeff == 0.001
    assert config.get_config_for_module("policy_1").entropy_coeff == 0.03
    assert config.get_config_for_module("policy_1").lr == 1e-3
    assert config.get_config_for_module("policy_0").lr == 5e-4
    assert config.env_runner_cls is BatchedEnvRunner
    assert config.train_batch_size_per_learner == 50 * 8
    assert config.minibatch_size == 50 * 8 // 4  # rows per module: one agent each


def test_shared_policy_and_central_critic() -> None:
    config = build(share_policy=True, central_critic=True, rollout_steps=50, num_minibatches=4, runner="stock")
    assert policy_mapping(config) == {"agent_0": "shared_policy", "agent_1": "shared_policy"}
    assert config.env_runner_cls is None
    assert config.minibatch_size == 2 * 50 * 8 // 4  # both agents' rows go to the one module
    one = build(share_policy=True, rollout_steps=50, num_minibatches=1)
    assert one.minibatch_size == 50 * 8  # RLlib's cap: one iteration's env steps
    spec = config.rl_module_spec.rl_module_specs["shared_policy"]
    assert spec.observation_space.shape == (25,) and spec.model_config["actor_obs_dim"] == 8
    module = spec.build()
    assert module.actor[0].in_features == 8 and module.critic[0].in_features == 25


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"per_module": {"policy_7": {"lr": 1e-3}}}, "per_module"),
        ({"share_policy": True, "per_module": {"policy_0": {"lr": 1e-3}}}, "per_module"),
        ({"rollout_steps": 0}, "rollout_steps"),
        ({"num_minibatches": -1}, "num_minibatches"),
        ({"num_epochs": 0}, "num_epochs"),
        ({"model": {"hidden_sizes": [64, 0]}}, "hidden_sizes"),
        ({"runner": "fast"}, "runner"),
        ({"entropy_coef": 0.01}, "entropy_coef"),
    ],
)
def test_invalid_training_settings_name_the_field(settings: dict, field: str) -> None:
    text = error_text(**settings)
    assert field in text and len(text.splitlines()) == 1


def test_unknown_policy_message_lists_the_valid_ids() -> None:
    assert "['policy_0', 'policy_1']" in error_text(per_module={"policy_7": {"lr": 1e-3}})


def test_mismatched_module_spaces_fail_the_check() -> None:
    config = build()
    specs = dict(config.rl_module_spec.rl_module_specs)
    specs["policy_1"] = RLModuleSpec(
        module_class=MAPushActorCritic,
        observation_space=gym.spaces.Box(-np.inf, np.inf, (10,), np.float32),
        action_space=specs["policy_1"].action_space,
        model_config=specs["policy_1"].model_config,
    )
    config.rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs=specs))
    with pytest.raises(ConfigError, match=r"rl_module_specs\.policy_1\.observation_space"):
        check_ppo_config(config)


def test_unknown_policy_in_the_mapping_fails_the_check() -> None:
    config = build()
    config.policy_mapping_fn = lambda agent_id, episode=None, **kw: "policy_x"
    with pytest.raises(ConfigError, match="policy_mapping_fn.*'policy_x'"):
        check_ppo_config(config)


def test_non_positive_batch_sizes_fail_the_check() -> None:
    config = build()
    config.train_batch_size_per_learner = 0
    with pytest.raises(ConfigError, match="train_batch_size_per_learner"):
        check_ppo_config(config)
    config = build()
    config.minibatch_size = 0
    with pytest.raises(ConfigError, match="minibatch_size"):
        check_ppo_config(config)
    config.minibatch_size = config.train_batch_size_per_learner + 1
    with pytest.raises(ConfigError, match="minibatch_size: .* larger than train_batch_size_per_learner"):
        check_ppo_config(config)
