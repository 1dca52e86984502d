"""What makes the task hard for a given policy: success per curriculum level, and what predicts failure.

A curriculum helps only if its levels differ in difficulty for the policies being trained. This script
takes one policy (a checkpoint or run directory, or `scripted`) and, with the calculator protocol (each
env's first episode, deterministic actions):

1. plays every level of the experiment's curriculum table, `--envs-per-level` envs each: success per level;
2. plays the full task and splits its first episodes by target distance, by how many agents spawned
   behind the box (on the side away from the target) and by whether the target lies off a face or a corner
   of the box; then describes the failures (timeout or exception, progress towards the target, each
   agent's share of steps in contact with the box).

    PYTHONPATH=$PWD python benchmarks/task_difficulty.py --config configs/single.yaml \
        --policy runs/single/ --envs-per-level 200 --json
"""

from __future__ import annotations

import argparse
import json
import math

import torch

from curriculum.levels import build_level_table
from mapush_rllib.evaluate import load_policy
from mapush_rllib.task.calculator import first_episodes
from mapush_rllib.task.vec_env import MAPushVecEnv
from population.config import load_experiment


def rate(success: torch.Tensor, mask: torch.Tensor) -> dict:
    n = int(mask.sum())
    return {"episodes": n, "success_rate": round(float(success[mask].float().mean()), 3) if n else None}


def per_level(experiment, policy, envs_per_level: int, seed: int) -> list[dict]:
    """Success of each level of the curriculum table (the full task last), envs_per_level envs each."""
    table = build_level_table(experiment.curriculum, experiment.task, experiment.simulator.physics)
    rows = torch.arange(table.num_levels + 1).repeat_interleave(envs_per_level)
    sim = experiment.simulator.model_copy(update={"num_envs": len(rows)})
    env = MAPushVecEnv(sim, experiment.task, experiment.rewards, seed=seed)
    env.set_task_params(torch.arange(len(rows)), **table.params(rows))
    stats = first_episodes(env, policy)[0]  # ordered by env
    env.close()
    names = [f"level {k}" for k in range(table.num_levels)] + ["full task"]
    return [
        {"row": name, "task": text, **rate(stats.success, rows == k)}
        for k, (name, text) in enumerate(zip(names, table.describe(), strict=True))
    ]


def full_task_anatomy(experiment, policy, num_envs: int, seed: int) -> dict:
    """Full-task success split by the reset geometry, and what the failed episodes looked like."""
    sim = experiment.simulator.model_copy(update={"num_envs": num_envs})
    env = MAPushVecEnv(sim, experiment.task, experiment.rewards, seed=seed)
    env.reset()
    start = env.state.clone()  # (E, 17); first_episodes resets again with the same seed: the same episodes
    stats = first_episodes(env, policy)[0]  # ordered by env
    env.close()

    box_xy, box_yaw, target_xy = start[:, 0:2], start[:, 2], start[:, 3:5]
    to_target = target_xy - box_xy
    distance = to_target.norm(dim=1)
    direction = to_target / distance[:, None]
    agents_xy = torch.stack([start[:, 5:7], start[:, 11:13]], dim=1)  # (E, 2, 2)
    behind = ((agents_xy - box_xy[:, None]) * direction[:, None]).sum(-1) < 0  # (E, 2): box between agent and target
    bearing = torch.remainder(torch.atan2(direction[:, 1], direction[:, 0]) - box_yaw, math.pi / 2)
    off_face = torch.minimum(bearing, math.pi / 2 - bearing) < math.pi / 8

    low, high = experiment.task.target_distance_m
    edges = torch.linspace(low, high, 4)
    success = stats.success
    failed = ~success
    contact = stats.engaged_steps / stats.length_steps[:, None].clamp(min=1)  # (E, A) share of steps in contact
    return {
        "episodes": len(stats),
        "success_rate": round(float(success.float().mean()), 3),
        "by_target_distance_m": {
            f"{float(a):.2f}-{float(b):.2f}": rate(success, (distance >= a) & (distance <= b))
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        },
        "by_agents_behind_box": {str(k): rate(success, behind.sum(dim=1) == k) for k in range(3)},
        "by_target_bearing": {"off a face": rate(success, off_face), "off a corner": rate(success, ~off_face)},
        "failures": {
            "episodes": int(failed.sum()),
            "timeout_share": round(float(stats.timeout[failed].float().mean()), 3) if failed.any() else None,
            "progress_quartiles": [round(float(q), 3) for q in torch.quantile(
                stats.task_progress[failed].float(), torch.tensor([0.25, 0.5, 0.75]))] if failed.any() else None,
            "contact_share_per_agent": [round(float(c), 3) for c in contact[failed].mean(dim=0)]
            if failed.any() else None,
        },
        "successes_contact_share_per_agent": [round(float(c), 3) for c in contact[success].mean(dim=0)]
        if success.any() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/single.yaml", help="experiment YAML (task, curriculum table)")
    parser.add_argument("--policy", default="scripted", help="scripted | random | checkpoint or run directory")
    parser.add_argument("--envs-per-level", type=int, default=200)
    parser.add_argument("--full-task-envs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    torch.set_num_threads(1)
    experiment = load_experiment(args.config)
    policy, info = load_policy(args.policy, args.seed)
    result = {
        "policy": info,
        "levels": per_level(experiment, policy, args.envs_per_level, args.seed),
        "full_task": full_task_anatomy(experiment, policy, args.full_task_envs, args.seed),
    }
    if args.json:
        print(json.dumps(result, default=str))
        return
    for row in result["levels"]:
        print(f"{row['row']:>9}  {row['task']:<60} success {row['success_rate']}  ({row['episodes']} episodes)")
    print(json.dumps(result["full_task"], indent=1))


if __name__ == "__main__":
    main()
