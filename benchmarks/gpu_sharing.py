"""How processes sharing one GPU slow each other down: the population's situation (configs/pbt_gpu.yaml: four
members, each its own process and CUDA context), reduced to torch work of the two kinds a member does.

- an *evaluation* is latency-bound: 1,000 sequential steps of small kernels on a few hundred envs (the calculator
  protocol's first episodes), a host read per step;
- *training* is throughput-bound: large batched matmuls (the PPO update over 131 k samples).

Without MPS the GPU time-slices between processes: a small kernel of the evaluating member waits for the other
members' slices, so an evaluation that takes ~5 s alone took 20-30 s in the population (rounds 16-20). With the
CUDA Multi-Process Service (`nvidia-cuda-mps-control -d`) kernels of different processes run side by side. This
measures both cases in one run, as ratios to the solo figures of the same run:

    python benchmarks/gpu_sharing.py                 # the current mode (with or without an MPS daemon)
    bash benchmarks/gpu_sharing.sh                   # both modes: without, then with a daemon started for it

Prints one JSON line per scenario: the evaluation's ms per step and its slow-down against running alone, and the
trainers' aggregate matmul throughput against one trainer alone.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time

import torch

EVAL_ENVS = 768  # 3 x 256: the team and each agent alone, one batch
EVAL_STEPS = 1000  # one 20 s episode at 50 Hz
START_DELAY_S = 6.0  # every worker has created its CUDA context by then
KERNELS_PER_STEP = 40  # simulator substeps, observation, policy: small launches per policy step
TRAIN_BATCH = 32768  # one PPO minibatch
HIDDEN = 256


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def evaluation_ms_per_step(device: str, steps: int) -> float:
    """Sequential small kernels with a host read per step, as a batched first-episode evaluation."""
    x = torch.randn(EVAL_ENVS, 64, device=device)
    w = torch.randn(64, 64, device=device) * 0.1
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        for _ in range(KERNELS_PER_STEP // 2):
            x = torch.tanh(x @ w)
        bool((x.abs() > 1e9).any())  # "has every env finished?": a host read
    sync(device)
    return (time.perf_counter() - start) / steps * 1e3


def train_until(device: str, stop_at: float, evaluation_done, passes_per_s) -> None:
    """Large matmuls until `stop_at` (time.time()) and the evaluation beside it (if any) has ended; adds this
    process's minibatch passes per second to `passes_per_s`."""
    x = torch.randn(TRAIN_BATCH, HIDDEN, device=device)
    w = torch.randn(HIDDEN, HIDDEN, device=device) * 0.05
    passes, start = 0, time.perf_counter()
    while time.time() < stop_at or not evaluation_done.is_set():
        for _ in range(10):
            x = torch.tanh(x @ w) @ w.T
        sync(device)
        passes += 10
    with passes_per_s.get_lock():
        passes_per_s.value += passes / (time.perf_counter() - start)


def _trainer(device: str, start_at: float, stop_at: float, evaluation_done, passes_per_s) -> None:
    torch.zeros(1, device=device)  # create the context before the measured window
    while time.time() < start_at:
        time.sleep(0.001)
    train_until(device, stop_at, evaluation_done, passes_per_s)


def _evaluator(device: str, start_at: float, steps: int, evaluation_done, result) -> None:
    evaluation_ms_per_step(device, 20)  # warm up (context, kernels)
    while time.time() < start_at:
        time.sleep(0.001)
    result.value = evaluation_ms_per_step(device, steps)
    evaluation_done.set()


def scenario(device: str, trainers: int, evaluate: bool, seconds: float, context: mp.context.BaseContext) -> dict:
    """`trainers` training processes for `seconds`, and with `evaluate` one evaluating process beside them."""
    passes_per_s, result = context.Value("d", 0.0), context.Value("d", float("nan"))
    evaluation_done = context.Event()
    if not evaluate:
        evaluation_done.set()
    start_at = time.time() + START_DELAY_S
    stop_at = start_at + seconds
    processes = [context.Process(target=_trainer, args=(device, start_at, stop_at, evaluation_done, passes_per_s))
                 for _ in range(trainers)]
    if evaluate:
        evaluator_args = (device, start_at, EVAL_STEPS, evaluation_done, result)
        processes.append(context.Process(target=_evaluator, args=evaluator_args))
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"a worker failed (exit {process.exitcode})")
    return {"trainers": trainers, "evaluator": evaluate,
            "train_passes_per_s": round(passes_per_s.value, 1) if trainers else None,
            "eval_ms_per_step": round(result.value, 3) if evaluate else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainers", type=int, default=3, help="members training while one evaluates")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each training window")
    parser.add_argument("--mode", default="default", help="a label for the output (e.g. mps)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                        help="cpu only checks the script (there is no sharing to measure on a CPU)")
    args = parser.parse_args()
    if args.trainers < 1:
        raise SystemExit(f"--trainers: {args.trainers}; at least 1 (members training beside the evaluation)")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_sharing.py needs a CUDA GPU (--device cpu only checks the script)")
    context = mp.get_context("spawn")
    solo_eval = scenario(args.device, 0, True, args.seconds, context)
    solo_train = scenario(args.device, 1, False, args.seconds, context)
    shared_train = scenario(args.device, args.trainers + 1, False, args.seconds, context)
    mixed = scenario(args.device, args.trainers, True, args.seconds, context)
    for name, row in (("evaluation alone", solo_eval), ("one trainer alone", solo_train),
                      (f"{args.trainers + 1} trainers", shared_train),
                      (f"{args.trainers} trainers + one evaluation", mixed)):
        row = {"mode": args.mode, "scenario": name, **row}
        if row["eval_ms_per_step"] is not None:
            row["eval_slowdown_vs_alone"] = round(row["eval_ms_per_step"] / solo_eval["eval_ms_per_step"], 2)
        if row["train_passes_per_s"]:
            row["train_aggregate_vs_one_alone"] = round(row["train_passes_per_s"] / solo_train["train_passes_per_s"], 2)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
