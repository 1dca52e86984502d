"""`MAPushPPOLearner`: RLlib's PPO torch learner that also trains on the batched runner's `RolloutBatch`es.

With `training.learner_batch: bulk` the batched runner returns its rollout tensors instead of episode chunks
(`mapush_rllib.rollout_batch`); this learner builds the training batch from them in bulk, on its own device,
and then updates exactly as PPO does (same minibatches, epochs, losses). Episodes still take RLlib's path.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.policy.sample_batch import MultiAgentBatch

from mapush_rllib.rollout_batch import RolloutBatch, learner_batch


class MAPushPPOLearner(PPOTorchLearner):
    """PPO learner whose training data may be `RolloutBatch`es (in `update(episodes=...)`)."""

    def _make_batch_if_necessary(self, training_data: Any) -> MultiAgentBatch:
        samples = training_data.episodes
        if samples and all(isinstance(sample, RolloutBatch) for sample in samples):
            return learner_batch(
                self.module, list(samples), gamma=self.config.gamma, lambda_=self.config.lambda_, device=self._device
            )
        return super()._make_batch_if_necessary(training_data)
