"""What limits the MuJoCo Warp backend on a GPU: the physics solver, the task layer, host synchronisation.

    python benchmarks/warp_profile.py --num-envs 1024 16384

Three measurements, one JSON line each (run after benchmarks/sim_throughput.py, which gives the headline figures):

1. `physics`: the backend alone, for several solver iteration caps. MuJoCo Warp iterates the constraint solver
   of all worlds until the *last* world converges (a graph-conditional loop), so the batch pays for its slowest
   world. Reports env-steps/s and the mean over steps of the largest and median per-world iteration count.
   `stream: warp` replays the graph on Warp's own stream instead of torch's (a launch-cost comparison).
2. `resets`: the full env step with the scripted controller, with and without episodes ending (a time limit
   and success radius that never trigger), which separates the auto-reset path from the rest of the task layer.
3. `syncs`: the host synchronisations of one env step (torch's sync debug mode), as source locations.
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
import warnings

import torch
import warp as wp

from mapush_rllib.sim.config import PhysicsConfig, SimConfig
from mapush_rllib.task.config import TaskConfig
from mapush_rllib.task.scripted import ScriptedPushPolicy
from mapush_rllib.task.vec_env import ACTION_SCALE, MAPushVecEnv


def physics(num_envs: int, iterations: int, seconds: float, device: str, stream: str = "torch") -> dict:
    """Backend-only env-steps/s with the solver capped at `iterations`, on scripted pushing commands."""
    sim = SimConfig(backend="mujoco_warp", device=device, physics=PhysicsConfig(solver_iterations=iterations))
    env = MAPushVecEnv(sim.with_num_envs(num_envs), seed=0)
    if stream == "warp":  # torch's default stream orders itself with Warp's (blocking) streams implicitly
        env.backend._on_torch_stream = lambda: wp.ScopedDevice(env.backend.wp_device)
    policy = ScriptedPushPolicy()
    for _ in range(50):
        env.step(policy(env.obs, env.episode_box_size))
    niter = wp.to_torch(env.backend.data.solver_niter)  # (E,) iterations of each world's last substep
    commands = ACTION_SCALE * policy(env.obs, env.episode_box_size).clamp(-1, 1)
    most, median = [], []
    for _ in range(20):
        env.backend.step(commands)
        most.append(niter.max().item())
        median.append(niter.float().median().item())
    synchronize(device)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.backend.step(commands)
        steps += 1
    synchronize(device)
    rate = num_envs * steps / (time.perf_counter() - start)
    env.close()
    return {"what": "physics", "num_envs": num_envs, "solver_iterations": iterations, "stream": stream,
            "physics_env_steps_per_s": round(rate), "max_world_iterations": sum(most) / len(most),
            "median_world_iterations": sum(median) / len(median)}


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def env_rate(num_envs: int, task: TaskConfig, seconds: float, device: str) -> tuple[float, float]:
    """Full env steps per second (synchronised per step) and the fraction of steps in which some episode ended."""
    env = MAPushVecEnv(SimConfig(backend="mujoco_warp", device=device, num_envs=num_envs), task, seed=0)
    policy = ScriptedPushPolicy()
    for _ in range(50):
        env.step(policy(env.obs, env.episode_box_size))
    elapsed, steps, with_resets = 0.0, 0, 0
    while elapsed < seconds:
        actions = policy(env.obs, env.episode_box_size)
        synchronize(device)
        start = time.perf_counter()
        result = env.step(actions)
        synchronize(device)
        elapsed += time.perf_counter() - start
        steps += 1
        with_resets += result.episodes is not None
    env.close()
    return num_envs * steps / elapsed, with_resets / steps


def resets(num_envs: int, seconds: float, device: str) -> dict:
    default, share = env_rate(num_envs, TaskConfig(), seconds, device)
    never = TaskConfig(success_radius_m=1e-6, episode_length_s=1e6, box_lift_limit_m=1e6, box_tilt_limit_rad=1e6,
                       agent_collision_distance_m=0.0)
    no_resets, _ = env_rate(num_envs, never, seconds, device)
    return {"what": "resets", "num_envs": num_envs, "env_steps_per_s": round(default),
            "steps_with_resets": round(share, 3), "env_steps_per_s_without_resets": round(no_resets)}


def syncs(num_envs: int) -> dict:
    """Source lines (in this project) of the operations that synchronise the host with the GPU in one env step."""
    env = MAPushVecEnv(SimConfig(backend="mujoco_warp", device="cuda", num_envs=num_envs), seed=0)
    policy = ScriptedPushPolicy()
    for _ in range(50):
        env.step(policy(env.obs, env.episode_box_size))
    actions = policy(env.obs, env.episode_box_size)
    torch.cuda.synchronize()
    steps, sites = 5, {}
    torch.cuda.set_sync_debug_mode("warn")  # torch warns at every synchronising operation, from its caller's line
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(steps):
                env.step(actions)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    for warning in caught:
        site = f"{warning.filename.split('mapush_rllib/')[-1]}:{warning.lineno}"
        sites[site] = sites.get(site, 0) + 1 / steps
    env.close()
    return {"what": "syncs", "num_envs": num_envs, "per_step": round(sum(sites.values()), 2), "sites": sites}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[1024, 16384])
    parser.add_argument("--iterations", type=int, nargs="+", default=[20, 5])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--device", default="cuda", help="cuda (what it is for), or cpu to try the script")
    args = parser.parse_args()
    torch.set_num_threads(1)
    wp.config.log_level = wp.LOG_WARNING
    jobs = [lambda: syncs(min(args.num_envs))] if args.device.startswith("cuda") else []
    for n in args.num_envs:
        jobs += [lambda n=n, k=k: physics(n, k, args.seconds, args.device) for k in args.iterations]
        if args.device.startswith("cuda"):
            jobs.append(lambda n=n: physics(n, args.iterations[0], args.seconds, args.device, stream="warp"))
        jobs.append(lambda n=n: resets(n, args.seconds, args.device))
    for job in jobs:
        try:
            row = job()
        except Exception:  # a diagnostic: report and go on with the others
            row = {"error": traceback.format_exc(limit=3)}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
