"""The calculator protocol: how a policy is judged (MAPush `openrl_ws/test.py` "calculator", spec §4.2).

N envs with one seed, a deterministic policy, rolled out until every env has finished its *first* episode;
metrics over exactly those first episodes (time-outs count as failures). Unlike a rolling average over whichever
episodes happened to finish, this is not biased toward quick successes. `python -m mapush_rllib.evaluate` runs it
from the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import torch
from tqdm import tqdm

from mapush_rllib.task.metrics import EpisodeStats
from mapush_rllib.task.vec_env import MAPushVecEnv

#: A policy maps observations (E, A, 8) and box sides (E,) to actions (E, A, 3).
Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def first_episodes(
    env: MAPushVecEnv, policy: Policy, *, record_envs: int = 0, progress: bool = False
) -> tuple[EpisodeStats, np.ndarray | None]:
    """Roll out until every env finished one episode; return those first episodes' stats.

    Args:
        record_envs: also return the global state of the first k envs at every step, (T, k, 17), for
            rendering; an env's rows repeat its terminal state after its first episode ended.
    """
    env.reset()
    finished = torch.zeros(env.num_envs, dtype=torch.bool, device=env.device)
    parts, frames = [], []
    initial = env.state[:record_envs].clone()
    bar = tqdm(total=env.num_envs, desc="episodes", disable=not progress, file=sys.stderr)
    with torch.no_grad():
        for _ in range(env.max_episode_steps):
            result = env.step(policy(env.obs, env.episode_box_size))
            if record_envs:
                last = frames[-1] if frames else initial
                frames.append(torch.where(finished[:record_envs, None], last, result.state[:record_envs]).cpu())
            if result.episodes is not None:
                new = ~finished[result.episodes.env_ids]
                if bool(new.any()):
                    parts.append(result.episodes.select(new))
                    finished[result.episodes.env_ids[new]] = True
                    bar.update(int(new.sum()))
            if bool(finished.all()):
                break
    bar.close()
    stats = EpisodeStats.cat(parts)
    recorded = torch.stack([initial.cpu(), *frames]).numpy() if record_envs else None
    return stats, recorded
