"""Simulator throughput: env-steps/s of the batched MAPush task, one JSON line per batch size.

    python benchmarks/sim_throughput.py --num-envs 1 64 512 --json

One env step = one 50 Hz policy step of both agents (4 physics substeps), including what the task layer does
on top of the physics: termination, all reward terms, observations, global state, episode statistics and
auto-reset. Agents run the scripted pushing controller, so boxes and agents are in contact as in training;
only the `env.step` calls are timed (the controller's own time is excluded). `physics_env_steps_per_s` times the
backend alone on the same commands, to show what the task layer costs.

Absolute figures are only comparable on the same machine at the same moment: the 2-core development machines
are shared and noisy (see shared/research/physics.md, "CPU noise").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from mapush_rllib.config import SimConfig
from mapush_rllib.scripted import ScriptedPushPolicy
from mapush_rllib.sim.vec_env import ACTION_SCALE, MAPushVecEnv


def measure(num_envs: int, backend: str, device: str, threads: int, seconds: float) -> dict:
    env = MAPushVecEnv(SimConfig(backend=backend, device=device, num_envs=num_envs, num_threads=threads), seed=0)
    policy = ScriptedPushPolicy()
    for _ in range(50):  # warm-up; lets agents reach the box
        env.step(policy(env.obs, env.episode_box_size))

    env_time, physics_time, steps = 0.0, 0.0, 0
    while env_time < seconds:
        actions = policy(env.obs, env.episode_box_size)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        env.step(actions)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        env_time += time.perf_counter() - start
        steps += 1

    commands = env._to_backend(ACTION_SCALE * policy(env.obs, env.episode_box_size).clamp(-1, 1))
    physics_steps = 0
    while physics_time < seconds / 2:
        start = time.perf_counter()
        env.backend.step(commands)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        physics_time += time.perf_counter() - start
        physics_steps += 1
    env.close()
    return {
        "backend": backend,
        "device": device,
        "num_envs": num_envs,
        "env_steps_per_s": round(num_envs * steps / env_time, 1),
        "physics_env_steps_per_s": round(num_envs * physics_steps / physics_time, 1),
        "task_layer_share": round(1 - (env_time / steps) ** -1 / (physics_time / physics_steps) ** -1, 3),
        "threads": threads or os.cpu_count(),
        "cpu": platform.processor() or platform.machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 512])
    parser.add_argument("--backend", default="mujoco", choices=["mujoco", "mujoco_warp", "server"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="simulator threads (0 = all CPUs)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed env-step seconds per batch size")
    parser.add_argument("--json", action="store_true", help="JSON lines only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for num_envs in args.num_envs:
        row = measure(num_envs, args.backend, args.device, args.threads, args.seconds)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"N={num_envs:6d}  {row['env_steps_per_s']:>12,.0f} env-steps/s  "
                  f"(physics alone {row['physics_env_steps_per_s']:,.0f}, task layer {row['task_layer_share']:.0%})")


if __name__ == "__main__":
    main()
