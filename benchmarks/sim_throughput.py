"""Simulator throughput: env-steps/s of the batched MAPush task, one JSON line per batch size.

    python benchmarks/sim_throughput.py --num-envs 1 64 512 --json
    python benchmarks/sim_throughput.py --backend mujoco_warp --device cuda --num-envs 1024 4096 16384 --json \
        --profile profile.txt      # on a GPU machine: see benchmarks/gpu_setup.sh

One env step = one 50 Hz policy step of both agents (4 physics substeps), including what the task layer does
on top of the physics: termination, all reward terms, observations, global state, episode statistics and
auto-reset. Agents run the scripted pushing controller, so boxes and agents are in contact as in training;
only the `env.step` calls are timed (the controller's own time is excluded). `physics_env_steps_per_s` times the
backend alone on the same commands, to show what the task layer costs.

On CUDA every timed call ends with `torch.cuda.synchronize()`, so a figure is the rate of whole, finished steps.
`--profile` adds, for the largest batch, where one env step's time goes (torch.profiler over a few steps): GPU
time in physics kernels (Warp) and in task-layer kernels (torch), against the step's wall time. The profiler does
not see the kernels inside MuJoCo Warp's solver loop (a conditional graph node), so the physics GPU time is a
lower bound; `benchmarks/warp_profile.py` measures the solver. The full tables go to the given file.

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

from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.scripted import ScriptedPushPolicy
from mapush_rllib.task.vec_env import ACTION_SCALE, MAPushVecEnv


def measure(num_envs: int, backend: str, device: str, threads: int, seconds: float, profile: str | None) -> dict:
    setup_start = time.perf_counter()
    env = MAPushVecEnv(SimConfig(backend=backend, device=device, num_envs=num_envs, num_threads=threads), seed=0)
    setup_s = time.perf_counter() - setup_start  # with MuJoCo Warp: kernel compilation (cached) and graph capture
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
    breakdown = {}
    if profile:
        try:
            breakdown = profile_step(env, policy, profile)
        except Exception as error:  # the profiler is a diagnostic: never lose the measurement to it
            breakdown = {"profile_error": repr(error)}
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
        "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "setup_s": round(setup_s, 1),
        **breakdown,
    }


def profile_step(env: MAPushVecEnv, policy: ScriptedPushPolicy, path: str, steps: int = 20) -> dict:
    """Where the time of `steps` env steps goes: GPU kernel time of the physics and of the task layer, per step."""
    from torch.profiler import ProfilerActivity, profile

    cuda = env.device.type == "cuda"
    actions = policy(env.obs, env.episode_box_size)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    events = prof.key_averages()
    with open(path, "a") as out:
        out.write(f"# {env.num_envs} envs, {steps} env steps, {wall / steps * 1e3:.3f} ms wall per step\n")
        for key in (["self_device_time_total"] if cuda else []) + ["self_cpu_time_total"]:
            out.write(events.table(sort_by=key, row_limit=40) + "\n")
    row = {"profile_wall_ms_per_step": round(wall / steps * 1e3, 3)}
    if cuda:
        # Device rows: Warp names its kernels "<name>_cuda_kernel_forward"; everything else (torch kernels,
        # copies, memsets) belongs to the task layer.
        cuda_type = torch.autograd.DeviceType.CUDA
        device_rows = [e for e in events if e.device_type == cuda_type and e.self_device_time_total]
        warp_rows = [e for e in device_rows if "_cuda_kernel_forward" in e.key]
        warp_us = sum(e.self_device_time_total for e in warp_rows)
        torch_us = sum(e.self_device_time_total for e in device_rows) - warp_us
        row.update(
            physics_gpu_ms_per_step=round(warp_us / steps / 1e3, 3),
            task_layer_gpu_ms_per_step=round(torch_us / steps / 1e3, 3),
            physics_kernels_per_step=round(sum(e.count for e in warp_rows) / steps, 1),
            task_layer_device_ops_per_step=round(sum(e.count for e in device_rows if e not in warp_rows) / steps, 1),
        )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1, 64, 512])
    parser.add_argument("--backend", default="mujoco", choices=["mujoco", "mujoco_warp", "server"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="simulator threads (0 = all CPUs)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed env-step seconds per batch size")
    parser.add_argument("--json", action="store_true", help="JSON lines only")
    parser.add_argument("--profile", metavar="PATH", help="profile the largest batch; append the tables to PATH")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for num_envs in args.num_envs:
        profile = args.profile if num_envs == max(args.num_envs) else None
        row = measure(num_envs, args.backend, args.device, args.threads, args.seconds, profile)
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"N={num_envs:6d}  {row['env_steps_per_s']:>12,.0f} env-steps/s  "
                  f"(physics alone {row['physics_env_steps_per_s']:,.0f}, task layer {row['task_layer_share']:.0%})")


if __name__ == "__main__":
    main()
