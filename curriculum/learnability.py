"""The learnability rule: sample each episode's level with probability proportional to p(1 - p) (SFL).

Sampling for Learnability (Rutherford et al. 2024, github amacrutherford/sampling-for-learnability) trains on
the tasks whose success rate p is neither ~0 (nothing to learn from yet) nor ~1 (already solved); for a binary
outcome p(1 - p) is the variance of the reward, highest at p = 0.5. Here p of a level is estimated from its
rolling window of outcomes with a Beta(1, 1) prior, (s + 1) / (n + 2), so an unplayed level counts as
p = 0.5 and gets tried. A share `uniform_mix` of the draws is uniform over all levels, which keeps every
level's estimate fresh (ALP-GMM keeps 20 % random tasks for the same reason).
"""

from __future__ import annotations

import torch


def learnability(successes: torch.Tensor, episodes: torch.Tensor) -> torch.Tensor:
    """(L,) p(1 - p) per level, p = (successes + 1) / (episodes + 2)."""
    p = (successes.to(torch.float64) + 1) / (episodes.to(torch.float64) + 2)
    return p * (1 - p)


def level_probabilities(successes: torch.Tensor, episodes: torch.Tensor, uniform_mix: float) -> torch.Tensor:
    """(L,) float64 sampling probabilities: learnability-proportional, mixed with a uniform share."""
    score = learnability(successes, episodes)
    uniform = torch.full_like(score, 1.0 / score.numel())
    return (1 - uniform_mix) * score / score.sum() + uniform_mix * uniform


def sample_levels(probabilities: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Levels drawn by inverse CDF: (L,) probabilities and (n,) uniforms in [0, 1) -> (n,) int64."""
    cdf = probabilities.cumsum(0)
    cdf = cdf / cdf[-1]
    return torch.searchsorted(cdf, uniforms.to(cdf.dtype), right=True).clamp(max=probabilities.numel() - 1)
