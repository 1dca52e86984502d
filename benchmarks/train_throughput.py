"""Training throughput of RLlib's stock multi-agent runner vs the batched runner, one JSON line per (runner, N).

    python benchmarks/train_throughput.py --json                  # N = 64, 256, 1024, both runners

For each runner and number of envs N per runner, in one process on the same machine:
- `raw_env_steps_per_s`: the envs that runner steps, alone, with random actions: N `MAPushMultiAgentEnv`s
  stepped one after another (stock), or one N-env `MAPushVecEnv` (batched);
- `sample_env_steps_per_s`: the env runner's `sample()` with policy inference (two policies, exploring);
- `train_env_steps_per_s`: whole PPO iterations (`Algorithm.train()`: sampling, learner connectors with
  GAE, 5 epochs x 4 minibatches of SGD, weight sync) with the local runner.
Each iteration samples `--batch` env steps (rollout = batch / N steps per env). Default task (20 s
episodes), default network ([64, 64]), torch on 1 thread, MuJoCo on all cores.

Absolute figures are only comparable within one run: the 2-core development machines are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from mapush_rllib.config import RewardConfig, SimConfig, TaskConfig
from mapush_rllib.env import AGENT_IDS, MAPushMultiAgentEnv, make_vec_env
from mapush_rllib.training import TrainingConfig, build_ppo_config


def algorithm_config(runner: str, num_envs: int, batch: int):
    rollout = max(8, batch // num_envs)
    return build_ppo_config(
        TrainingConfig(runner=runner, rollout_steps=rollout),
        SimConfig(num_envs=num_envs, num_threads=0), TaskConfig(), RewardConfig(), seed=0,
    )


def raw_throughput(runner: str, env_config: dict, num_envs: int, seconds: float) -> float:
    """Env steps/s of the runner's envs alone, random actions in [-1, 1]."""
    rng = np.random.default_rng(0)
    if runner == "batched":
        env = make_vec_env(env_config, num_envs=num_envs, env_id_offset=0)
        step = lambda: env.step(torch.rand(num_envs, len(AGENT_IDS), 3) * 2 - 1)  # noqa: E731
    else:
        envs = [MAPushMultiAgentEnv({**env_config, "env_id": k}) for k in range(num_envs)]
        for sub_env in envs:
            sub_env.reset()

        def step() -> None:
            for sub_env in envs:
                actions = {aid: rng.uniform(-1, 1, 3).astype(np.float32) for aid in AGENT_IDS}
                _, _, terminated, truncated, _ = sub_env.step(actions)
                if terminated["__all__"] or truncated["__all__"]:
                    sub_env.reset()

    step()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    return num_envs * steps / (time.perf_counter() - start)


def sample_throughput(config, seconds: float) -> float:
    """Env steps/s of `sample()` on a runner built in this process (after one warm-up call)."""
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    runner = (config.env_runner_cls or MultiAgentEnvRunner)(config=config, worker_index=0)
    runner.sample()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += sum(episode.env_steps() for episode in runner.sample())
    elapsed = time.perf_counter() - start
    runner.stop()
    return steps / elapsed


def train_throughput(config, iterations: int) -> float:
    """Env steps/s of whole PPO iterations (after one warm-up iteration)."""
    algo = config.build_algo()
    try:
        algo.train()
        start = time.perf_counter()
        for _ in range(iterations):
            algo.train()
        elapsed = time.perf_counter() - start
    finally:
        algo.stop()
    return iterations * config.train_batch_size_per_learner / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--runners", nargs="+", default=["stock", "batched"], choices=["stock", "batched"])
    parser.add_argument("--batch", type=int, default=16384, help="env steps per PPO iteration")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds of raw stepping and of sampling")
    parser.add_argument("--iterations", type=int, default=2, help="timed PPO iterations")
    parser.add_argument("--json", action="store_true", help="JSON lines only")
    args = parser.parse_args()
    torch.set_num_threads(1)

    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        for num_envs in args.num_envs:
            for runner in args.runners:
                config = algorithm_config(runner, num_envs, args.batch)
                row = {
                    "runner": runner,
                    "num_envs": num_envs,
                    "raw_env_steps_per_s": round(raw_throughput(runner, config.env_config, num_envs, args.seconds)),
                    "sample_env_steps_per_s": round(sample_throughput(config, args.seconds)),
                    "train_env_steps_per_s": round(train_throughput(config, args.iterations)),
                    "rollout_steps": config.rollout_fragment_length,
                    "cpus": os.cpu_count(),
                    "load_avg_1min": round(os.getloadavg()[0], 2),
                }
                row["sample_over_raw"] = round(row["sample_env_steps_per_s"] / row["raw_env_steps_per_s"], 3)
                if args.json:
                    print(json.dumps(row), flush=True)
                else:
                    print(", ".join(f"{key}={value}" for key, value in row.items()), flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
