"""The pooled rule: one frontier level for a batch of envs, moved by each level's outcomes pooled over all envs.

Why: the threshold rule waits for `min_episodes` episodes *per env* at a level, so the env steps a promotion
costs grow with the number of envs (4,096 envs: a mean level of 0.11 of 7 after 16 M env steps, where 64 envs
reach 3-4 within 4 M). Here every episode, from any env, counts once toward the level it was played at (the
scheduler's per-level rings of the last `stats_window_episodes` outcomes), and one decision moves every env.

Play: each episode plays the frontier, except a `probe_share` of them, which play a level drawn uniformly from
the whole table, so the success of every level stays measured, easier levels keep being trained, and the next
levels' outcomes are known before the frontier gets there (no waiting an episode length per promotion).

Moves, after every batch of outcomes (pure tensor ops, no host sync): the frontier F moves down one level when
level F is known to fail (below); otherwise it moves up past every level k >= F, in order, that is known to be
mastered, stopping at the first level that is not, and never onto a level known to fail, so it cannot bounce
between two levels. A level is known to be mastered (to fail) when either of two windows of its episodes, each
fixed before their outcomes are seen and holding at least `level_episodes` of them, says so:

- the settled window: its last `stats_window_episodes` episodes before its oldest running one, all ended; their
  success rate is >= `promote_success_rate` (<= `demote_success_rate`);
- the window ahead: its episodes from the oldest running one on, ended or running; even counting every running
  one as a failure the rate is >= `promote_success_rate` (as a success: <= `demote_success_rate`).

The settled window alone waits for a level's slowest episodes: with 4,096 envs, one 1,000-step time-out is 4 M
env steps. The window ahead decides as soon as enough successes (or failures) are in, so promotions cost about
as many env steps at 4,096 envs as at 256; both are certain of what they claim, so no decision rests on censored
outcomes.
"""

from __future__ import annotations

import torch

_EPS = 1e-9  # rates like 3/4 must meet a 0.75 threshold despite float rounding


def next_frontier(
    frontier: torch.Tensor,
    successes: torch.Tensor,
    episodes: torch.Tensor,
    *,
    level_episodes: int,
    promote_success_rate: float,
    demote_success_rate: float,
    bounds: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The new frontier (0-d int64) from each level's settled outcomes, (L,) successes and episodes, and the
    window ahead's `bounds`, (L,) sure successes, sure failures and episodes (running ones included)."""
    levels = torch.arange(len(episodes), device=episodes.device)
    mastered, failing = _verdicts(successes, episodes - successes, episodes, level_episodes,
                                  promote_success_rate, demote_success_rate)
    if bounds is not None:
        mastered_ahead, failing_ahead = _verdicts(*bounds, level_episodes, promote_success_rate, demote_success_rate)
        mastered, failing = mastered | mastered_ahead, failing | failing_ahead
    # Level k may be left upward when it is mastered and the level above it is not known to fail.
    passable = mastered & ~torch.cat([failing[1:], torch.ones(1, dtype=torch.bool, device=failing.device)])
    # Levels below the frontier count as passed, so the run length from level 0 is the highest reachable level.
    passed = torch.where(levels < frontier, True, passable)
    up = torch.cumprod(passed.long(), dim=0).sum()
    down = (frontier - 1).clamp(min=0)
    return torch.where(failing[frontier], down, torch.maximum(up, frontier))


def _verdicts(successes: torch.Tensor, failures: torch.Tensor, episodes: torch.Tensor, level_episodes: int,
              promote_success_rate: float, demote_success_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mastered, failing), (L,) bool: whether the window's success rate is surely >= the promote rate (counting
    the episodes of unknown outcome as failures), or surely <= the demote rate (counting them as successes)."""
    count = episodes.clamp(min=1).to(torch.float64)
    known = episodes >= level_episodes
    mastered = known & (successes.to(torch.float64) / count >= promote_success_rate - _EPS)
    failing = known & (1 - failures.to(torch.float64) / count <= demote_success_rate + _EPS)
    return mastered, failing


def frontier_rows(frontier: torch.Tensor, u: torch.Tensor, *, num_levels: int, probe_share: float,
                  whole_range_at_top: bool) -> torch.Tensor:
    """(n,) levels for new episodes from one uniform draw `u` (n,) each: the frontier, or a uniform probe.

    At the top level with `whole_range_at_top`, every episode plays a uniformly drawn level.
    """
    anywhere = (u * num_levels).long().clamp(max=num_levels - 1)
    if probe_share > 0:
        probe_level = (u / probe_share * num_levels).long().clamp(max=num_levels - 1)
        rows = torch.where(u < probe_share, probe_level, frontier.expand_as(anywhere))
    else:
        rows = frontier.expand_as(anywhere).clone()
    if whole_range_at_top:
        rows = torch.where(frontier == num_levels - 1, anywhere, rows)
    return rows
