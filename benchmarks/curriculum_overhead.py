"""Cost of the curriculum at resets, against the cost of a simulator step (embedded MuJoCo).

Prints, for E envs of which n reset in one step: the scheduler's episode_end + task_params time, the
TaskParams.set that applies the result, and one MAPushVecEnv.step without resets. Compare the ratios
within one run; absolute times depend on the machine and its load.

    PYTHONPATH=$PWD python benchmarks/curriculum_overhead.py --num-envs 512 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from curriculum import CurriculumConfig, CurriculumScheduler
from mapush_rllib.sim.config import PhysicsConfig, SimConfig
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.task_params import TaskParams
from mapush_rllib.task.vec_env import MAPushVecEnv


def per_call_s(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="torch and MuJoCo threads")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    E = args.num_envs
    task, physics = TaskConfig(), PhysicsConfig()
    generator = torch.Generator().manual_seed(0)

    env = MAPushVecEnv(SimConfig(num_envs=E, num_threads=args.threads), task, seed=0)
    zeros = torch.zeros(E, 2, 3)
    step_s = per_call_s(lambda: env.step(zeros), max(10, args.repeats // 10))
    print(f"E={E}: MAPushVecEnv.step (no curriculum): {step_s * 1e3:8.3f} ms")

    for rule in ("threshold", "learnability"):
        scheduler = CurriculumScheduler(CurriculumConfig(rule=rule), task, physics, num_envs=E, seed=0)
        params = TaskParams(E, task, physics, torch.device("cpu"))
        scheduler.task_params(torch.arange(E))
        for n in (max(1, E // 64), E // 8, E):
            ids = torch.randperm(E, generator=generator)[:n]
            success = torch.rand(n, generator=generator) < 0.5

            def schedule(scheduler=scheduler, ids=ids, success=success) -> dict:
                scheduler.episode_end(ids, success)
                return scheduler.task_params(ids)

            values = schedule()

            def apply(params=params, ids=ids, values=values) -> None:
                params.set(ids, **values)

            schedule_s = per_call_s(schedule, args.repeats)
            apply_s = per_call_s(apply, args.repeats)
            print(
                f"  {rule:12s} n={n:5d} resets: scheduler {schedule_s * 1e3:7.3f} ms "
                f"({schedule_s / step_s:5.1%} of a step), TaskParams.set {apply_s * 1e3:7.3f} ms"
            )


if __name__ == "__main__":
    main()
