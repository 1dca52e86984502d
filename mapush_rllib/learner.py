"""`MAPushPPOLearner`: RLlib's PPO torch learner that also trains on the batched runner's `RolloutBatch`es.

With `training.learner_batch: bulk` the batched runner returns its rollout tensors instead of episode chunks
(`mapush_rllib.rollout_batch`); this learner builds the training batch from them in bulk, on its own device,
and then updates as PPO does (same minibatches, epochs, losses). Episodes still take RLlib's path.

Its loss is RLlib's PPO loss without host synchronisation: RLlib takes each masked mean as
`sum(x[loss_mask]) / n`, and boolean indexing makes the host wait for the GPU (a `nonzero`) five times per module
and minibatch; here the masked rows are zeroed instead (`torch.where`), which gives the same means to float
rounding (`tests/rllib/test_rollout_batch.py`).
"""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.algorithms.ppo.ppo import (
    LEARNER_RESULTS_KL_KEY,
    LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY,
    LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY,
)
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import ENTROPY_KEY, POLICY_LOSS_KEY, VF_LOSS_KEY
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.policy.sample_batch import MultiAgentBatch
from ray.rllib.utils.numpy import SMALL_NUMBER

from mapush_rllib.ray_compat import PPOTorchLearnerWithBatchHook, learner_device, masked_mean
from mapush_rllib.rollout_batch import RolloutBatch, learner_batch


class MAPushPPOLearner(PPOTorchLearnerWithBatchHook):
    """PPO learner whose training data may be `RolloutBatch`es (in `update(episodes=...)`)."""

    def batch_from_samples(self, samples: list[Any]) -> MultiAgentBatch | None:
        if not all(isinstance(sample, RolloutBatch) for sample in samples):
            return None  # episodes: RLlib's learner connectors build the batch
        return learner_batch(
            self.module, samples, gamma=self.config.gamma, lambda_=self.config.lambda_, device=learner_device(self)
        )

    def compute_loss_for_module(self, *, module_id: str, config: Any, batch: dict, fwd_out: dict) -> torch.Tensor:
        """PPO's clipped surrogate, clipped value loss and entropy bonus (RLlib's terms and logged keys)."""
        module = self.module[module_id].unwrapped()
        mean = masked_mean(batch.get(Columns.LOSS_MASK))
        new_dist = module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])
        ratio = torch.exp(new_dist.logp(batch[Columns.ACTIONS]) - batch[Columns.ACTION_LOGP])
        advantages = batch[Postprocessing.ADVANTAGES]
        surrogate = torch.min(
            advantages * ratio, advantages * torch.clamp(ratio, 1 - config.clip_param, 1 + config.clip_param)
        )
        entropy = new_dist.entropy()
        if config.use_critic:
            values = module.compute_values(batch, embeddings=fwd_out.get(Columns.EMBEDDINGS))
            vf_loss = torch.pow(values - batch[Postprocessing.VALUE_TARGETS], 2.0)
            vf_loss_clipped = torch.clamp(vf_loss, 0, config.vf_clip_param)
        else:
            values = vf_loss = vf_loss_clipped = torch.zeros((), device=surrogate.device)
        entropy_coeff = self.entropy_coeff_schedulers_per_module[module_id].get_current_value()
        total_loss = mean(-surrogate + config.vf_loss_coeff * vf_loss_clipped - entropy_coeff * entropy)
        kl = torch.zeros((), device=surrogate.device)
        if config.use_kl_loss:
            old_dist = module.get_exploration_action_dist_cls().from_logits(batch[Columns.ACTION_DIST_INPUTS])
            kl = mean(old_dist.kl(new_dist))
            total_loss = total_loss + self.curr_kl_coeffs_per_module[module_id] * kl
        self.metrics.log_dict(
            {
                POLICY_LOSS_KEY: -mean(surrogate),
                VF_LOSS_KEY: mean(vf_loss_clipped),
                LEARNER_RESULTS_VF_LOSS_UNCLIPPED_KEY: mean(vf_loss),
                LEARNER_RESULTS_VF_EXPLAINED_VAR_KEY: explained_variance(
                    batch[Postprocessing.VALUE_TARGETS], values
                ),
                ENTROPY_KEY: mean(entropy),
                LEARNER_RESULTS_KL_KEY: kl,
            },
            key=module_id,
            window=1,
        )
        return total_loss


def explained_variance(targets: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """1 - Var[targets - predictions] / Var[targets], at least -1: RLlib's, without its host-made -1 tensor."""
    targets = targets.squeeze()
    ratio = torch.var(targets - predictions.squeeze(), dim=0) / (torch.var(targets, dim=0) + SMALL_NUMBER)
    return torch.clamp(1 - ratio, min=-1.0)
