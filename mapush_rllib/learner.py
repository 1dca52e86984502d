"""`MAPushPPOLearner`: RLlib's PPO torch learner that also trains on the batched runner's `RolloutBatch`es.

With `training.learner_batch: bulk` the batched runner returns its rollout tensors instead of episode chunks
(`mapush_rllib.rollout_batch`); this learner builds the training batch from them in bulk, on its own device,
and then updates exactly as PPO does (same minibatches, epochs, losses). Episodes still take RLlib's path.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.policy.sample_batch import MultiAgentBatch

from mapush_rllib.ray_compat import PPOTorchLearnerWithBatchHook, learner_device
from mapush_rllib.rollout_batch import RolloutBatch, learner_batch


class MAPushPPOLearner(PPOTorchLearnerWithBatchHook):
    """PPO learner whose training data may be `RolloutBatch`es (in `update(episodes=...)`)."""

    def batch_from_samples(self, samples: list[Any]) -> MultiAgentBatch | None:
        if not all(isinstance(sample, RolloutBatch) for sample in samples):
            return None  # episodes: RLlib's learner connectors build the batch
        return learner_batch(
            self.module, samples, gamma=self.config.gamma, lambda_=self.config.lambda_, device=learner_device(self)
        )
