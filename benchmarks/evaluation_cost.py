"""What a member's evaluation costs, and why: milliseconds per env step of the evaluation batch against the
training batch, with one process on the device and with several processes sharing it (as a population does).

    python benchmarks/evaluation_cost.py --backend mujoco_warp --device cuda --processes 1 4 --json

An evaluation plays every env to the end of its first episode: 1,000 sequential steps whenever one episode times
out, whatever the number of envs. If a step's time hardly depends on the batch size (a GPU step is a fixed chain
of small kernels), the evaluation of 256 episodes x 3 coalitions (768 envs) costs as much as 1,000 training steps
of 4,096 envs, i.e. about one PBT interval of 30 iterations x 32 steps; and several processes on one GPU take
turns on it (time-slicing), so each one's steps are slower. This prints both figures, measured in one run
(milliseconds per step are seconds per 1,000-step evaluation).

Each process builds its own batch (the evaluation batch of `mapush_rllib.task.calculator.evaluation_env`, or a
training batch of `--train-envs`), steps it with the scripted team (every agent acting) for a few warm-up steps,
waits for the others, then times `--steps` steps ending with a device synchronisation; no other host read than
the env's own (which envs reset), as in the evaluation loop.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.multiprocessing as mp

from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.calculator import evaluation_env
from mapush_rllib.task.config import RewardConfig, TaskConfig
from mapush_rllib.task.scripted import ScriptedPushPolicy
from mapush_rllib.task.vec_env import MAPushVecEnv

WARMUP_STEPS = 20


def _worker(kind: str, args: argparse.Namespace, barrier, results) -> None:  # noqa: ANN001 -- mp objects
    sim = SimConfig(backend=args.backend, device=args.device, num_envs=1, num_threads=1)
    if kind == "evaluation":
        env = evaluation_env(sim, TaskConfig(), RewardConfig(), num_envs=args.episodes, seed=1, contribution=True)
    else:
        env = MAPushVecEnv(sim.with_num_envs(args.train_envs), seed=1)
    policy = ScriptedPushPolicy()
    env.reset()
    for _ in range(WARMUP_STEPS):
        env.step(policy(env.obs, env.episode_box_size))
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    barrier.wait()
    start = time.perf_counter()
    for _ in range(args.steps):
        env.step(policy(env.obs, env.episode_box_size))
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    results.put(1000 * (time.perf_counter() - start) / args.steps)
    env.close()


def measure(kind: str, processes: int, args: argparse.Namespace) -> dict:
    context = mp.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_worker, args=(kind, args, barrier, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    ms = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    num_envs = args.episodes * 3 if kind == "evaluation" else args.train_envs
    return {"batch": kind, "num_envs": num_envs, "processes": processes,
            "ms_per_step": round(sum(ms) / len(ms), 2), "ms_per_step_each": [round(m, 2) for m in ms]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="mujoco")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--episodes", type=int, default=256, help="evaluation episodes (x3 envs: the coalitions)")
    parser.add_argument("--train-envs", type=int, default=4096)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(kind, processes, args) for processes in args.processes for kind in ("evaluation", "training")]
    for row in rows:
        print(json.dumps(row) if args.json else row)
    by = {(row["batch"], row["processes"]): row["ms_per_step"] for row in rows}
    for processes in args.processes:
        ratio = by["evaluation", processes] / by["training", processes]
        print(json.dumps({"processes": processes, "evaluation_step_over_training_step": round(ratio, 2)}))


if __name__ == "__main__":
    main()
