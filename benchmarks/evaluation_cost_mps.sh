#!/usr/bin/env bash
# benchmarks/evaluation_cost.py (ms per step of the evaluation and training batches, 1 and 4 processes on the GPU)
# twice on the lent GPU machine: as the GPU is (the processes take turns: time-slicing), then with a CUDA MPS
# daemon (benchmarks/mps.sh) started for the measurement and stopped after it. After `gpu_setup.sh install` and
# `export PYTHONPATH=/tmp/site:<checkout>`:
#   bash benchmarks/evaluation_cost_mps.sh [--steps 200]      # JSON lines of both modes, each after its label
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
measure() { python3 benchmarks/evaluation_cost.py --backend mujoco_warp --device cuda --processes 1 4 --json "$@"; }
nvidia-smi --query-gpu=name,compute_mode --format=csv,noheader
echo "time-sliced:"; measure "$@"
source benchmarks/mps.sh
mps_start || { echo "MPS not measured"; exit 0; }
echo "mps:"; measure "$@"; status=$?
mps_stop
exit $status
