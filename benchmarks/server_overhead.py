"""Simulator-server overhead: env-steps/s of the embedded MuJoCo backend in-process vs hosted by a server process.

Two levels, both at N = 64 and N = 1024 envs (2 agents each) by default:
- vec_env: `MAPushVecEnv.step` with random actions (what training sees: task layer + physics);
- backend: `PhysicsBackend.step` + `state()` alone, so the server's own cost is not diluted by the task layer.

Prints one JSON line per measurement and one per ratio (server / in-process throughput, from the same run).
Goal: overhead <= 15 % at N = 1024 (ratio >= 0.85). Timings on a shared machine are noisy: compare ratios.

    PYTHONPATH=$PWD python benchmarks/server_overhead.py [--envs 64 1024] [--steps 200] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.vec_env import MAPushVecEnv


def measure_vec_env(sim: SimConfig, num_envs: int, steps: int, warmup: int) -> float:
    env = MAPushVecEnv(sim.with_num_envs(num_envs), seed=0)
    generator = torch.Generator().manual_seed(0)
    actions = [torch.rand(num_envs, 2, 3, generator=generator) * 2 - 1 for _ in range(warmup + steps)]
    try:
        for a in actions[:warmup]:
            env.step(a)
        start = time.perf_counter()
        for a in actions[warmup:]:
            env.step(a)
        return num_envs * steps / (time.perf_counter() - start)
    finally:
        env.close()


def measure_backend(sim: SimConfig, num_envs: int, steps: int, warmup: int) -> float:
    env = MAPushVecEnv(sim.with_num_envs(num_envs), seed=0)  # builds and resets the backend
    backend = env.backend
    rng = np.random.default_rng(0)
    commands = [(rng.random((num_envs, 2, 3), dtype=np.float32) - 0.5) for _ in range(warmup + steps)]
    try:
        for c in commands[:warmup]:
            backend.step(c)
            backend.state()
        start = time.perf_counter()
        for c in commands[warmup:]:
            backend.step(c)
            backend.state()
        return num_envs * steps / (time.perf_counter() - start)
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[64, 1024])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="MuJoCo batch threads (0 = all CPUs), both sides")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for level, measure in (("backend", measure_backend), ("vec_env", measure_vec_env)):
        for num_envs in args.envs:
            rates = {}
            for where, backend in (("in_process", "mujoco"), ("server", "server")):
                sim = SimConfig(backend=backend, num_threads=args.threads)
                rates[where] = measure(sim, num_envs, args.steps, args.warmup)
                print(json.dumps({"level": level, "num_envs": num_envs, "where": where,
                                  "env_steps_per_s": round(rates[where], 1)}), flush=True)
            ratio = rates["server"] / rates["in_process"]
            print(json.dumps({"level": level, "num_envs": num_envs, "server_over_in_process": round(ratio, 3),
                              "overhead_pct": round(100 * (1 / ratio - 1), 1)}), flush=True)


if __name__ == "__main__":
    main()
