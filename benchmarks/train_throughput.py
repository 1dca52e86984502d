"""Training throughput of RLlib's stock multi-agent runner vs the batched runner, one JSON line per (runner, N).

    python benchmarks/train_throughput.py --json                  # N = 64, 256, 1024, both runners, CPU
    python benchmarks/train_throughput.py --json --backend mujoco_warp --device cuda --gpus 1 \\
        --runners batched --learner-batch bulk --num-envs 4096 16384 --rollout-steps 32 --profile   # one GPU

For each runner and number of envs N per runner, in one process on the same machine:
- `raw_env_steps_per_s`: the envs that runner steps, alone, with random actions: N `MAPushMultiAgentEnv`s
  stepped one after another (stock), or one N-env `MAPushVecEnv` (batched);
- `sample_env_steps_per_s`: the env runner's `sample()` with policy inference (two policies, exploring);
- `train_env_steps_per_s`: whole PPO iterations (`Algorithm.train()`: sampling, learner connectors with
  GAE, 5 epochs x 4 minibatches of SGD, weight sync) with the local runner, each timed here (RLlib's own timers
  are moving averages), after one warm-up iteration.
Each iteration samples `--batch` env steps (rollout = batch / N steps per env), or N x `--rollout-steps`.
Default task (20 s episodes), default network ([64, 64]), torch on 1 thread, MuJoCo on all cores.

GPU (`--device cuda`): the simulator's tensors, the runner's policies and, with `--gpus 1`, the PPO learner live
on the GPU; `--learner-batch bulk` hands the rollout tensors to the learner without episode objects
(`mapush_rllib/rollout_batch.py`). `--members K` also trains K members at once (Ray actors sharing the learner
GPUs, as Tune trials with `run.resources.gpus: 1/K` do) and reports their summed env steps/s. `--profile` adds
one more iteration split into its phases, each timed with the GPU synchronised: the rollout (simulator +
policy), building episodes (episodes only), the learner batch (RLlib's connectors and GAE, or the bulk build),
the SGD epochs, and the weight sync; `--torch-profile FILE` writes torch.profiler's op tables of yet another
iteration.

Absolute figures are only comparable within one run: the 2-core development machines are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from mapush_rllib.env import MAPushMultiAgentEnv, make_vec_env
from mapush_rllib.sim.config import SimConfig
from mapush_rllib.task.config import AGENT_IDS, RewardConfig, TaskConfig
from mapush_rllib.training import TrainingConfig, build_ppo_config


def algorithm_config(runner: str, num_envs: int, args: argparse.Namespace, learner_batch: str = "episodes"):
    rollout = args.rollout_steps or max(8, args.batch // num_envs)
    config = build_ppo_config(
        TrainingConfig(runner=runner, rollout_steps=rollout, learner_batch=learner_batch),
        SimConfig(num_envs=num_envs, num_threads=0, backend=args.backend, device=args.device),
        TaskConfig(), RewardConfig(), seed=0,
    )
    return config.learners(num_gpus_per_learner=args.gpus)


def synchronize() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def raw_throughput(runner: str, env_config: dict, num_envs: int, seconds: float) -> float:
    """Env steps/s of the runner's envs alone, random actions in [-1, 1]."""
    rng = np.random.default_rng(0)
    if runner == "batched":
        env = make_vec_env(env_config, env_id_offset=0, num_envs=num_envs)
        step = lambda: env.step(torch.rand(num_envs, len(AGENT_IDS), 3, device=env.device) * 2 - 1)  # noqa: E731
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
    synchronize()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    synchronize()
    return num_envs * steps / (time.perf_counter() - start)


def sample_throughput(config, seconds: float) -> float:
    """Env steps/s of `sample()` on a runner built in this process (after one warm-up call)."""
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    runner = (config.env_runner_cls or MultiAgentEnvRunner)(config=config, worker_index=0)
    runner.sample()
    synchronize()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        steps += sum(sample.env_steps() for sample in runner.sample())
    synchronize()
    elapsed = time.perf_counter() - start
    runner.stop()
    return steps / elapsed


def train_throughput(config, iterations: int, profile: bool, torch_profile: str | None) -> tuple[float, dict]:
    """Env steps/s of whole PPO iterations (after one warm-up iteration), and the phases of one more."""
    algo = config.build_algo()
    phases: dict = {}
    try:
        algo.train()
        synchronize()
        durations = []
        for _ in range(iterations):
            start = time.perf_counter()
            algo.train()
            synchronize()
            durations.append(time.perf_counter() - start)
        phases["gpu_memory_gib"] = gpu_memory_gib()
        if profile:
            phases.update(profile_iteration(algo, None))
            phases["train_iteration_s"] = round(float(np.median(durations)), 4)
        if torch_profile:  # a separate iteration: the profiler's own overhead stays out of the phase times
            profile_iteration(algo, torch_profile)
    finally:
        algo.stop()
    return iterations * config.train_batch_size_per_learner / sum(durations), phases


class Member:
    """One PBT member's training in its own Ray actor (as a Tune trial runs it), for `--members`."""

    def __init__(self, config) -> None:
        torch.set_num_threads(1)
        self.algo = config.build_algo()
        self.algo.train()  # warm-up: kernel compilation, first episodes

    def train(self, iterations: int) -> None:
        for _ in range(iterations):
            self.algo.train()
        synchronize()

    def gpu_memory_gib(self) -> float:
        return gpu_memory_gib()


def members_throughput(config, members: int, iterations: int, gpus: float) -> float:
    """Summed env steps/s of `members` members training at once, each an actor with `gpus / members` GPUs."""
    import ray

    actor = ray.remote(num_cpus=1, num_gpus=gpus / members)(Member)
    workers = [actor.remote(config) for _ in range(members)]
    ray.get([worker.gpu_memory_gib.remote() for worker in workers])  # all built and warmed up
    start = time.perf_counter()
    ray.get([worker.train.remote(iterations) for worker in workers])
    elapsed = time.perf_counter() - start
    for worker in workers:
        ray.kill(worker)
    return members * iterations * config.train_batch_size_per_learner / elapsed


def gpu_memory_gib() -> float | None:
    """GPU memory in use on the whole device (torch, Warp, CUDA contexts), GiB; None without a GPU."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    free, total = torch.cuda.mem_get_info()
    return round((total - free) / 2**30, 2)


def profile_iteration(algo, torch_profile: str | None) -> dict:
    """PPO's training_step (sample, learner batch, SGD epochs, weight sync), each phase timed synchronised."""
    from ray.rllib.core.learner.training_data import TrainingData
    from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

    runner, learner, config = algo.env_runner_group.local_env_runner, algo.learner_group._learner, algo.config
    seconds: dict[str, float] = {"rollout_s": 0.0}
    rollout = runner._rollout

    def timed_rollout(*args, **kwargs):  # the simulator + policy part of sample(); the rest builds episodes
        synchronize()
        start = time.perf_counter()
        result = rollout(*args, **kwargs)
        synchronize()
        seconds["rollout_s"] += time.perf_counter() - start
        return result

    def phase(name: str, fn):
        synchronize()
        start = time.perf_counter()
        result = fn()
        synchronize()
        seconds[name] = time.perf_counter() - start
        return result

    runner._rollout = timed_rollout
    profiler = None
    if torch_profile:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        profiler = torch.profiler.profile(activities=activities)
        profiler.__enter__()
    try:
        samples = phase("sample_s", lambda: runner.sample())
        batch = phase("learner_batch_s", lambda: learner._make_batch_if_necessary(TrainingData(episodes=samples)))
        phase("update_s", lambda: learner.update(
            batch=batch, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: 0}, num_epochs=config.num_epochs,
            minibatch_size=config.minibatch_size, shuffle_batch_per_epoch=config.shuffle_batch_per_epoch,
        ))
        phase("weight_sync_s", lambda: algo.env_runner_group.sync_weights(
            from_worker_or_learner_group=algo.learner_group, inference_only=True
        ))
    finally:
        runner._rollout = rollout
        if profiler is not None:
            profiler.__exit__(None, None, None)
    if profiler is not None:
        averages = profiler.key_averages()
        with open(torch_profile, "a") as out:
            for sort in ("self_cpu_time_total", "self_cuda_time_total" if torch.cuda.is_available() else None):
                if sort:
                    out.write(f"\n=== {config.num_envs_per_env_runner} envs, sorted by {sort}\n")
                    out.write(averages.table(sort_by=sort, row_limit=30) + "\n")
    seconds["episodes_s"] = seconds["sample_s"] - seconds["rollout_s"]
    return {key: round(value, 4) for key, value in seconds.items()}


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-envs", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--runners", nargs="+", default=["stock", "batched"], choices=["stock", "batched"])
    parser.add_argument("--learner-batch", nargs="+", default=["episodes"], choices=["episodes", "bulk"],
                        help="batched runner: episode chunks through RLlib's connectors, and/or the bulk batch")
    parser.add_argument("--batch", type=int, default=16384, help="env steps per PPO iteration")
    parser.add_argument("--rollout-steps", type=int, help="steps per env per iteration (overrides --batch)")
    parser.add_argument("--backend", default="mujoco", choices=["mujoco", "mujoco_warp"])
    parser.add_argument("--device", default="cpu", help="simulator and runner device (cpu, cuda)")
    parser.add_argument("--gpus", type=float, default=0.0, help="GPUs of the PPO learner (num_gpus_per_learner)")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds of raw stepping and of sampling")
    parser.add_argument("--iterations", type=int, default=2, help="timed PPO iterations")
    parser.add_argument("--skip-raw-sample", action="store_true", help="measure training only")
    parser.add_argument("--members", type=int, nargs="*", default=[],
                        help="also train this many members at once, sharing --gpus (e.g. 2 4)")
    parser.add_argument("--profile", action="store_true", help="time the phases of one more iteration")
    parser.add_argument("--torch-profile", help="append torch.profiler op tables of that iteration to this file")
    parser.add_argument("--json", action="store_true", help="JSON lines only")
    args = parser.parse_args()
    torch.set_num_threads(1)

    import ray

    ray.init(num_cpus=os.cpu_count(), num_gpus=int(np.ceil(args.gpus)), include_dashboard=False, log_to_driver=False)
    try:
        for num_envs in args.num_envs:
            for runner in args.runners:
                for learner_batch in args.learner_batch if runner == "batched" else ["episodes"]:
                    config = algorithm_config(runner, num_envs, args, learner_batch)
                    row = {"runner": runner, "num_envs": num_envs}
                    if not args.skip_raw_sample:
                        row["raw_env_steps_per_s"] = round(
                            raw_throughput(runner, config.env_config, num_envs, args.seconds)
                        )
                        row["sample_env_steps_per_s"] = round(sample_throughput(config, args.seconds))
                    train, phases = train_throughput(config, args.iterations, args.profile, args.torch_profile)
                    row["train_env_steps_per_s"] = round(train)
                    row.update(
                        learner_batch=learner_batch, rollout_steps=config.rollout_fragment_length,
                        env_steps_per_iteration=config.train_batch_size_per_learner, backend=args.backend,
                        device=device_name(args.device), learner_gpus=args.gpus, cpus=os.cpu_count(),
                        load_avg_1min=round(os.getloadavg()[0], 2),
                    )
                    if "raw_env_steps_per_s" in row:
                        row["sample_over_raw"] = round(row["sample_env_steps_per_s"] / row["raw_env_steps_per_s"], 3)
                    memory = phases.pop("gpu_memory_gib", None)
                    if memory is not None:
                        row["gpu_memory_gib"] = memory
                    if phases:
                        row["phases"] = phases
                    for members in args.members:
                        row[f"train_env_steps_per_s_{members}_members"] = round(
                            members_throughput(config, members, args.iterations, args.gpus)
                        )
                    if args.json:
                        print(json.dumps(row), flush=True)
                    else:
                        print(", ".join(f"{key}={value}" for key, value in row.items()), flush=True)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
