"""The threshold rule: per-env promotion and demotion from the env's recent outcomes (legged_gym, ADR bands).

Each env keeps a window of its last `window_episodes` outcomes *at its current level*. Once it holds at least
`min_episodes` of them, the env is promoted one level if their success rate is >= `promote_success_rate`
and demoted one level if it is <= `demote_success_rate`. Two things make the rule hysteretic, so an env
does not flip between neighbouring levels on noise: the band between the two thresholds, in which the env
stays, and the window being cleared on every move, so a moved env must play `min_episodes` at its new level
before it can move again. Level 0 cannot be demoted; the top level cannot be promoted (see
`CurriculumConfig.top_level` for what an env at the top plays).
"""

from __future__ import annotations

import torch

_EPS = 1e-9  # rates like 3/4 must meet a 0.75 threshold despite float rounding


def next_levels(
    levels: torch.Tensor,
    successes: torch.Tensor,
    episodes: torch.Tensor,
    *,
    top_level: int,
    min_episodes: int,
    promote_success_rate: float,
    demote_success_rate: float,
) -> torch.Tensor:
    """New levels of n envs from the outcomes in their windows.

    Args:
        levels: (n,) int64 current levels.
        successes: (n,) successes in each env's window.
        episodes: (n,) outcomes in each env's window.
    Returns:
        (n,) int64 levels, each the old one or one up or down.
    """
    rate = successes.to(torch.float64) / episodes.clamp(min=1).to(torch.float64)
    decided = episodes >= min_episodes
    promote = decided & (rate >= promote_success_rate - _EPS) & (levels < top_level)
    demote = decided & (rate <= demote_success_rate + _EPS) & (levels > 0)
    return levels + promote.long() - demote.long()
