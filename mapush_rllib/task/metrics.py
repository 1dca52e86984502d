"""Task metrics: what a finished episode achieved, and the team-level summaries we rank and log by.

Definitions (MAPush calculator protocol, spec §4.2, extended with per-agent contribution):
- success rate: fraction of episodes whose box centre reached the success radius.
- finish time [s]: time of success, with failures counted as the full episode length (20 s).
- collaboration degree: over successful episodes, the fraction of (pre-success) steps in which *both*
  agents were within `box half side + 0.4 m` of the box centre (MAPush's 1.0 m for its 1.2 m box).
- engagement of agent i: fraction of steps in which it touched the box or was within 0.45 m of its surface.
- contact share of agent i: its share of the team's contact impulse on the box (integral of |force| dt).
- freeloading index: 1 - min_i J_i / max_i J_i over the agents' contact impulses J_i. 0 means both
  pushed equally, 1 means one agent did all the pushing. Averaged over episodes in which the box was
  touched at all; 0 when none was.
- task progress: the share of the way from the initial box-target distance to the success radius that the
  box covered, (d_0 - d_end) / (d_0 - success radius) clipped to [0, 1] (1 on success). Unlike the shaped
  return it does not depend on reward scales, so it can rank members before any of them succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from mapush_rllib.task.config import AGENT_IDS, REWARD_TERMS

COLLABORATION_MARGIN_M = 0.4
ENGAGEMENT_DISTANCE_M = 0.45
CONTACT_FORCE_THRESHOLD_N = 1.0


@dataclass
class EpisodeStats:
    """Statistics of n finished episodes (any envs). Tensors on the env's device."""

    env_ids: torch.Tensor  # (n,)
    success: torch.Tensor  # (n,) bool
    exception: torch.Tensor  # (n,) bool
    timeout: torch.Tensor  # (n,) bool
    length_steps: torch.Tensor  # (n,)
    finish_time_s: torch.Tensor  # (n,) success time, or the episode length limit on failure
    collaboration_steps: torch.Tensor  # (n,)
    engaged_steps: torch.Tensor  # (n, A)
    contact_impulse: torch.Tensor  # (n, A) [N s]
    term_sums: torch.Tensor  # (n, A, K) scaled reward terms summed over the episode
    initial_distance_m: torch.Tensor  # (n,) box-target distance at reset
    task_progress: torch.Tensor  # (n,) share of the way to the success radius the box covered, in [0, 1]
    box_size_m: torch.Tensor  # (n,)

    def __len__(self) -> int:
        return int(self.env_ids.shape[0])

    @classmethod
    def empty(cls, num_agents: int, num_terms: int) -> EpisodeStats:
        """Stats of no episodes (keeps shapes, so derived tables have all their columns)."""
        none, bools = torch.zeros(0), torch.zeros(0, dtype=torch.bool)
        return cls(
            env_ids=torch.zeros(0, dtype=torch.long), success=bools, exception=bools, timeout=bools,
            length_steps=torch.zeros(0, dtype=torch.long), finish_time_s=none, collaboration_steps=none,
            engaged_steps=torch.zeros(0, num_agents), contact_impulse=torch.zeros(0, num_agents),
            term_sums=torch.zeros(0, num_agents, num_terms), initial_distance_m=none, task_progress=none,
            box_size_m=none,
        )

    @classmethod
    def cat(cls, parts: list[EpisodeStats]) -> EpisodeStats:
        return cls(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def select(self, mask: torch.Tensor) -> EpisodeStats:
        return EpisodeStats(**{f.name: getattr(self, f.name)[mask] for f in fields(self)})

    def to(self, device: str | torch.device) -> EpisodeStats:
        return EpisodeStats(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def returns(self) -> torch.Tensor:
        return self.term_sums.sum(dim=-1)

    def freeloading_index(self) -> torch.Tensor:
        """(n,) 1 - min/max of the agents' contact impulse; NaN where the box was never touched."""
        impulse = self.contact_impulse
        most = impulse.max(dim=1).values
        index = 1 - impulse.min(dim=1).values / most.clamp(min=1e-9)
        return torch.where(most > 1e-6, index, torch.full_like(index, float("nan")))


def summarize(stats: EpisodeStats) -> dict[str, float]:
    """Team-level means of a set of episodes (NaN-ignoring means of `episode_values`; 0 where none counts)."""
    out: dict[str, float] = {"num_episodes": float(len(stats))}
    if len(stats) == 0:
        return out
    for key, values in episode_values(stats).items():
        counted = values[~torch.isnan(values)]
        out[key] = counted.float().mean().item() if counted.numel() else 0.0
    return out


def episode_values(stats: EpisodeStats) -> dict[str, torch.Tensor]:
    """The `summarize` quantities per episode, (n,) each; NaN where an episode does not count.

    A NaN-ignoring mean over any set of episodes gives `summarize`'s value (collaboration degree counts
    successful episodes only, the freeloading index touched ones only), so loggers can average per
    episode across batches and processes.
    """
    n = len(stats)
    num_agents = stats.engaged_steps.shape[1]
    length = stats.length_steps.float().clamp(min=1)
    nan = torch.full((n,), float("nan"), device=stats.success.device)
    impulse = stats.contact_impulse
    team = impulse.sum(dim=1, keepdim=True)
    share = torch.where(team > 1e-6, impulse / team.clamp(min=1e-9), torch.full_like(impulse, 1 / num_agents))
    returns = stats.returns
    out = {
        "success_rate": stats.success.float(),
        "exception_rate": stats.exception.float(),
        "finish_time_s": stats.finish_time_s.float(),
        "collaboration_degree": torch.where(stats.success, stats.collaboration_steps / length, nan),
        "freeloading_index": stats.freeloading_index(),
        "task_progress": stats.task_progress.float(),
    }
    for i, agent_id in enumerate(AGENT_IDS[:num_agents]):
        out[f"engagement/{agent_id}"] = stats.engaged_steps[:, i] / length
        out[f"contact_share/{agent_id}"] = share[:, i]
        out[f"episode_return/{agent_id}"] = returns[:, i]
        for k, term in enumerate(REWARD_TERMS):
            out[f"reward/{term}/{agent_id}"] = stats.term_sums[:, i, k]
    return out
