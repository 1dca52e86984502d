"""What the curriculum reports: additive counts per scheduler, merged across env runners, then read as rates.

A training run has one scheduler per env runner. Their counts (envs per level, outcomes in the rolling
windows, promotions) add up, so `CurriculumStats.merge` of all runners followed by `metrics()` gives the same
numbers as one scheduler over all envs would. The metric keys, all under `curriculum/`:

- `level_mean`, `level_max`: of the levels the training envs play now (the eval slice has no level).
- `frontier`: the pooled rule's frontier level (averaged over schedulers by their training envs).
- `level_hist/<k>`: share of training envs at level k.
- `level_success_rate/<k>`, `level_episodes/<k>`: success rate over the last `stats_window_episodes`
  episodes *played* at level k (an env at the top level with `top_level: whole_range` plays lower levels
  too), and how many episodes that is. The rate is left out while a level has no episodes.
- `full_task_success_rate`, `full_task_episodes`: the same for the eval slice, which always runs the full
  task: a rolling rate over the slice's episodes that *finished*, biased toward quick successes while long
  episodes are still running (early in a run, short rollouts, restarted trials). Compare members and runs on the
  member's own evaluation instead (`eval/...`, `mapush_rllib.evaluation`).
- `promotions`, `demotions`: cumulative counts of level moves (threshold rule).
- `eval_envs`: size of the eval slice.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

PREFIX = "curriculum/"


@dataclass
class CurriculumStats:
    """Counts of one or more schedulers. L = number of levels; every tensor is int64 on the CPU."""

    enabled: bool
    envs_per_level: torch.Tensor  # (L,) training envs at each level now
    level_successes: torch.Tensor  # (L,) successes in each level's rolling window
    level_episodes: torch.Tensor  # (L,) episodes in each level's rolling window
    full_task_successes: torch.Tensor  # () successes in the eval slice's rolling window
    full_task_episodes: torch.Tensor  # () episodes in that window
    eval_envs: torch.Tensor  # ()
    promotions: torch.Tensor  # ()
    demotions: torch.Tensor  # ()
    frontier_envs: torch.Tensor  # (L,) training envs of pooled-rule schedulers, counted at their frontier level

    @classmethod
    def merge(cls, parts: list[CurriculumStats]) -> CurriculumStats:
        """Sum of the counts of several schedulers (e.g. one per env runner) over the same level table."""
        if len({int(p.envs_per_level.numel()) for p in parts}) != 1:
            raise ValueError("cannot merge curriculum stats of level tables with different numbers of levels")
        summed = {
            f.name: torch.stack([getattr(p, f.name) for p in parts]).sum(dim=0)
            for f in fields(cls) if f.name != "enabled"
        }
        return cls(enabled=all(p.enabled for p in parts), **summed)

    def metrics(self) -> dict[str, float]:
        """The `curriculum/...` metrics (see the module docstring)."""
        out = {PREFIX + "eval_envs": float(self.eval_envs)}
        if int(self.full_task_episodes) > 0:
            out[PREFIX + "full_task_success_rate"] = float(self.full_task_successes) / float(self.full_task_episodes)
        out[PREFIX + "full_task_episodes"] = float(self.full_task_episodes)
        if not self.enabled:
            return out
        counts = self.envs_per_level.tolist()
        total = sum(counts)
        levels = range(len(counts))
        if total > 0:
            out[PREFIX + "level_mean"] = sum(k * c for k, c in zip(levels, counts, strict=True)) / total
            out[PREFIX + "level_max"] = float(max(k for k, c in zip(levels, counts, strict=True) if c > 0))
        for k, count in zip(levels, counts, strict=True):
            out[f"{PREFIX}level_hist/{k}"] = count / total if total > 0 else 0.0
        per_level = zip(self.level_successes.tolist(), self.level_episodes.tolist(), strict=True)
        for k, (wins, episodes) in enumerate(per_level):
            if episodes > 0:
                out[f"{PREFIX}level_success_rate/{k}"] = wins / episodes
            out[f"{PREFIX}level_episodes/{k}"] = float(episodes)
        frontier_total = int(self.frontier_envs.sum())
        if frontier_total > 0:
            out[PREFIX + "frontier"] = float((self.frontier_envs * torch.arange(len(counts))).sum()) / frontier_total
        out[PREFIX + "promotions"] = float(self.promotions)
        out[PREFIX + "demotions"] = float(self.demotions)
        return out

    def summary(self) -> str:
        """One line for logs, e.g. when a run resumes: where the curriculum stands."""
        m = self.metrics()
        full = m.get(PREFIX + "full_task_success_rate")
        full_text = "n/a" if full is None else f"{full:.2f}"
        full_text += f" ({int(m[PREFIX + 'full_task_episodes'])} episodes)"
        if not self.enabled:
            return f"curriculum off; full-task success {full_text}"
        if PREFIX + "level_mean" not in m:
            return f"curriculum: no training envs; full-task success {full_text}"
        return (
            f"curriculum: level mean {m[PREFIX + 'level_mean']:.2f}, max {int(m[PREFIX + 'level_max'])} "
            f"of {len(self.envs_per_level) - 1}; full-task success {full_text}"
        )
