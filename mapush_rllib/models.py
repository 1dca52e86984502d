"""The policy network: an MLP actor with a state-independent Gaussian, and a separate MLP critic.

This is MAPush's (OpenRL) actor-critic layout: separate actor and critic MLPs, orthogonal init with a
small (0.01) gain on the action mean, a learned log-std that does not depend on the observation.

With a central critic the observation is [own 8-D obs | 17-D global state] (`mapush_rllib.env`): the
actor reads only the first `actor_obs_dim` entries, so a trained actor runs on the 8-D observation
alone (decentralised execution); the critic reads everything.
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchDiagGaussian
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def mlp(in_dim: int, hidden_sizes: list[int], out_dim: int, activation: str, out_gain: float) -> nn.Sequential:
    """Orthogonally initialised MLP: hidden layers with gain sqrt(2), output layer with `out_gain`."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        linear = nn.Linear(in_dim, size)
        nn.init.orthogonal_(linear.weight, gain=2**0.5)
        nn.init.zeros_(linear.bias)
        layers += [linear, ACTIVATIONS[activation]()]
        in_dim = size
    out = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(out.weight, gain=out_gain)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*layers, out)


class MAPushActorCritic(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """Actor-critic RLModule for one policy; PPO-compatible (implements ValueFunctionAPI).

    model_config keys: `hidden_sizes` (list of int), `activation` (tanh|relu|elu), `initial_log_std`,
    `actor_obs_dim` (how many leading observation entries the actor sees; default: all).
    """

    def setup(self) -> None:
        config = self.model_config
        obs_dim = int(self.observation_space.shape[0])
        self.action_dim = int(self.action_space.shape[0])
        self.actor_obs_dim = int(config.get("actor_obs_dim") or obs_dim)
        hidden, activation = list(config.get("hidden_sizes", [64, 64])), config.get("activation", "tanh")
        self.actor = mlp(self.actor_obs_dim, hidden, self.action_dim, activation, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((self.action_dim,), float(config.get("initial_log_std", 0.0))))
        self.critic = mlp(obs_dim, hidden, 1, activation, out_gain=1.0)

    def action_mean(self, actor_obs: torch.Tensor) -> torch.Tensor:
        """Deterministic action (..., action_dim) from the actor's part of the observation (..., actor_obs_dim)."""
        return self.actor(actor_obs)

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        mean = self.action_mean(batch[Columns.OBS][..., : self.actor_obs_dim])
        return {Columns.ACTION_DIST_INPUTS: torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return self.critic(batch[Columns.OBS]).squeeze(-1)

    def get_non_inference_attributes(self) -> list[str]:
        return ["critic"]

    def get_inference_action_dist_cls(self) -> type[TorchDiagGaussian]:
        return TorchDiagGaussian

    def get_exploration_action_dist_cls(self) -> type[TorchDiagGaussian]:
        return TorchDiagGaussian

    def get_train_action_dist_cls(self) -> type[TorchDiagGaussian]:
        return TorchDiagGaussian
