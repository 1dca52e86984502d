"""The calculator protocol: how a team is judged (MAPush `openrl_ws/test.py` "calculator", spec §4.2), and who
in the team really contributed.

N envs with one seed, a deterministic policy, rolled out until every env has finished its *first* episode;
metrics over exactly those first episodes (time-outs count as failures). Unlike a rolling average over whichever
episodes happened to finish, this is not biased toward quick successes.

**Contribution.** The same N episodes (same env ids, so the same resets) are played three times side by side in
one batch: by the whole team, by agent 0 alone and by agent 1 alone, an idle agent sending a zero command. Nobody
acting moves no box: v{} = 0 (measured: exactly 0 success and progress), so that coalition is not played, a
quarter less work. With v(S) the success rate (or task progress) of coalition S, agent i's Shapley value is
phi_i = 1/2 [(v{i} - v{}) + (v{0,1} - v{j})], exact for two agents. The contribution balance is
min(phi) / max(phi) of task progress (a success counts as progress 1, so it is defined before any success):
1 when both agents are needed equally, 0 when one is useless. Unlike the contact-impulse freeloading index it
tells an agent that touches the box without helping from one that pushes.

`python -m mapush_rllib.evaluate` and the population's evaluation phase both call `evaluate_team`, so a
checkpoint scores the same from the command line as it did in its run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np
import torch
from tqdm import tqdm

from mapush_rllib.sim.config import NUM_AGENTS, SimConfig
from mapush_rllib.task.config import AGENT_IDS, RewardConfig, TaskConfig
from mapush_rllib.task.metrics import EpisodeStats, summarize
from mapush_rllib.task.vec_env import MAPushVecEnv

#: A policy maps observations (E, A, 8) and box sides (E,) to actions (E, A, 3).
Policy = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: The agents that act in each block of a contribution evaluation; the others stay idle. The whole team first.
TEAM = tuple(range(NUM_AGENTS))
COALITIONS = (TEAM, (0,), (1,), ())
#: The coalitions played, one block of envs each; the empty one is worth 0 (see the module docstring).
PLAYED = COALITIONS[:3]
#: The per-coalition values whose Shapley values are reported.
SHAPLEY_VALUES = ("success_rate", "task_progress")
#: Team metrics of the calculator that are reported (means over the first episodes of the whole team).
TEAM_METRICS = ("success_rate", "finish_time_s", "task_progress", "freeloading_index", "collaboration_degree")


def evaluation_env(
    sim: SimConfig, task: TaskConfig, rewards: RewardConfig, *, num_envs: int, seed: int, contribution: bool
) -> MAPushVecEnv:
    """The batch the protocol runs on: `num_envs` envs (global ids 0..num_envs-1), once per coalition when
    `contribution` is on, each block replaying the same episodes."""
    blocks = len(PLAYED) if contribution else 1
    env_ids = torch.arange(num_envs).repeat(blocks)
    return MAPushVecEnv(sim.with_num_envs(num_envs * blocks), task, rewards, seed=seed, env_ids=env_ids)


def first_episodes(
    env: MAPushVecEnv, policy: Policy, *, record_envs: int = 0, progress: bool = False
) -> tuple[EpisodeStats, np.ndarray | None]:
    """Reset every env to its first episode under the env's seed, roll out until every env finished it, and
    return those episodes' stats, ordered by env.

    This loop is the evaluation's whole cost: 1,000 sequential steps when any episode times out, each about as
    long as a training step on a GPU whatever the number of envs (`benchmarks/evaluation_cost.py`).

    Args:
        record_envs: also return the global state of the first k envs at every step, (T, k, 17), for
            rendering; an env's rows repeat its terminal state after its first episode ended.
    """
    env.reset(seed=env.seed)  # the same first episodes every time the protocol runs on this env
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
    stats = stats.select(torch.argsort(stats.env_ids))  # in finishing order until here
    recorded = torch.stack([initial.cpu(), *frames]).numpy() if record_envs else None
    return stats, recorded


class CoalitionPolicy:
    """A team policy in which, in each block of envs, only the agents of that block's coalition act."""

    def __init__(self, policy: Policy, num_envs: int, coalitions: tuple[tuple[int, ...], ...], device) -> None:
        self.policy = policy
        acts = torch.zeros(len(coalitions), NUM_AGENTS, dtype=torch.bool)
        for block, coalition in enumerate(coalitions):
            acts[block, list(coalition)] = True
        self.acts = acts.repeat_interleave(num_envs, dim=0).to(device)[..., None]  # (blocks * N, A, 1)

    def __call__(self, obs: torch.Tensor, box_size_m: torch.Tensor) -> torch.Tensor:
        return torch.where(self.acts, self.policy(obs, box_size_m), 0.0)


def evaluate_team(
    env: MAPushVecEnv, policy: Policy, *, contribution: bool, record_envs: int = 0, progress: bool = False
) -> tuple[dict[str, float], EpisodeStats, np.ndarray | None]:
    """The calculator protocol on an `evaluation_env` made with the same `contribution` setting.

    Returns the flat metrics (the whole team's `summarize`, plus `contribution/<agent>/<value>` and
    `contribution_balance` with `contribution`), the whole team's first-episode stats ordered by env, and the
    recorded frames (of the whole team's first envs).
    """
    blocks = len(PLAYED) if contribution else 1
    if contribution and not _is_tiled(env):
        raise ValueError("evaluate_team(contribution=True) needs an env made by evaluation_env(contribution=True)")
    num_envs = env.num_envs // blocks
    acting = CoalitionPolicy(policy, num_envs, PLAYED[:blocks], env.device) if blocks > 1 else policy
    stats, frames = first_episodes(env, acting, record_envs=record_envs, progress=progress)
    # ordered by env: block b holds envs b*N .. b*N+N-1
    per_block = [stats.select(slice(b * num_envs, (b + 1) * num_envs)) for b in range(blocks)]
    team = per_block[0]
    metrics = summarize(team)
    if blocks > 1:
        values = {c: summarize(s) for c, s in zip(PLAYED, per_block, strict=True)}
        metrics.update(shapley_metrics({**values, (): dict.fromkeys(SHAPLEY_VALUES, 0.0)}))
    return metrics, team, frames


def shapley_metrics(values: dict[tuple[int, ...], dict[str, float]]) -> dict[str, float]:
    """Each agent's Shapley value of success and of task progress, and the contribution balance, from the
    per-coalition means (two agents: exact)."""
    out = {}
    phi = {}
    for key in SHAPLEY_VALUES:
        v = {coalition: values[coalition].get(key, 0.0) for coalition in COALITIONS}
        for agent, other in ((0, 1), (1, 0)):
            phi[agent, key] = 0.5 * ((v[(agent,)] - v[()]) + (v[TEAM] - v[(other,)]))
            out[f"contribution/{AGENT_IDS[agent]}/{key}"] = phi[agent, key]
    out["contribution_balance"] = contribution_balance(phi[0, "task_progress"], phi[1, "task_progress"])
    return out


def contribution_balance(phi_0: float, phi_1: float) -> float:
    """min(phi) / max(phi), clipped to [0, 1]; 0 when neither agent contributes anything."""
    most = max(phi_0, phi_1)
    return min(1.0, max(0.0, min(phi_0, phi_1) / most)) if most > 1e-9 else 0.0


def _is_tiled(env: MAPushVecEnv) -> bool:
    """True when the env's ids are one block of ids repeated once per coalition (built by `evaluation_env`)."""
    if env.num_envs % len(PLAYED):
        return False
    ids = env.env_ids.view(len(PLAYED), -1)
    return bool((ids == ids[0]).all())
