"""Curriculum level reached per env step at a small and a large batch, with a fixed policy.

    python benchmarks/curriculum_scale.py --num-envs 256 4096 --env-steps 8000000 --json

The policy is fixed (the scripted controller, made to stand still while the box is farther than 2.2 m from
the target), so the only thing that changes between batch sizes is how the curriculum's statistics accrue: its
level should reach the same equilibrium after the same number of env steps. Each line: rule, batch size, and
the frontier (pooled rule) or mean level (threshold rule) at every mark of env steps; the last line per rule
gives the ratio large/small at each mark. The first outcomes of a batch arrive only when its first episodes end
(num_envs x the episode length in env steps), so the large batch starts later by that much whatever the rule.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from curriculum import CurriculumConfig, CurriculumScheduler
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.scripted import ScriptedPushPolicy
from mapush_rllib.task.vec_env import MAPushVecEnv

MAX_TARGET_DISTANCE_M = 2.2  # the fixed policy's competence: it succeeds only on targets closer than this


def level_curve(rule: str, num_envs: int, env_steps: int, marks: list[int], seed: int) -> dict:
    """The curriculum's level at each mark of env steps, for one rule and batch size."""
    sim = SimConfig(num_envs=num_envs)
    task = TaskConfig()
    scheduler = CurriculumScheduler(CurriculumConfig(rule=rule, eval_fraction=0.0), task, sim.physics,
                                    num_envs=num_envs, seed=seed)
    env = MAPushVecEnv(sim, task, seed=seed, task_schedule=scheduler)
    policy = ScriptedPushPolicy(max_target_distance_m=MAX_TARGET_DISTANCE_M)
    key = "curriculum/frontier" if rule == "pooled" else "curriculum/level_mean"
    levels, pending, started = [], sorted(marks), time.perf_counter()
    with torch.no_grad():
        for step in range(1, -(-env_steps // num_envs) + 1):  # until the last mark is reached
            env.step(policy(env.obs, env.episode_box_size))
            while pending and step * num_envs >= pending[0]:
                levels.append(round(scheduler.metrics().get(key, 0.0), 3))
                pending.pop(0)
    env.close()
    return {"rule": rule, "num_envs": num_envs, "metric": key, "marks": marks[: len(levels)], "levels": levels,
            "promotions": int(scheduler.promotions), "wall_s": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs=2, default=[256, 4096], metavar=("SMALL", "LARGE"))
    parser.add_argument("--env-steps", type=int, default=8_000_000)
    parser.add_argument("--marks", type=int, default=8, help="evenly spaced marks of env steps")
    parser.add_argument("--rules", nargs="+", default=["pooled", "threshold"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    marks = [args.env_steps * (k + 1) // args.marks for k in range(args.marks)]
    for rule in args.rules:
        curves = []
        for num_envs in args.num_envs:
            curves.append(level_curve(rule, num_envs, args.env_steps, marks, args.seed))
            print(json.dumps(curves[-1]) if args.json else curves[-1], flush=True)
        small, large = curves
        ratios = [round(b / a, 2) if a > 0 else None for a, b in zip(small["levels"], large["levels"], strict=True)]
        row = {"rule": rule, "large_over_small": ratios, "marks": marks}
        print(json.dumps(row) if args.json else row, flush=True)


if __name__ == "__main__":
    main()
