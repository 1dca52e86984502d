#!/usr/bin/env bash
# benchmarks/evaluation_cost.py (ms per step of the evaluation and training batches, 1 and 4 processes on the GPU)
# twice on the lent GPU machine: as the GPU is (the processes take turns: time-slicing), then with a CUDA MPS
# daemon started for the measurement (kernels of different processes side by side; pipe and log folders under
# /tmp) and stopped after it. The GPU's settings are not touched. After `gpu_setup.sh install` and
# `export PYTHONPATH=/tmp/site:<checkout>`:
#   bash benchmarks/evaluation_cost_mps.sh [--steps 200]      # JSON lines of both modes, each after its label
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
measure() { python3 benchmarks/evaluation_cost.py --backend mujoco_warp --device cuda --processes 1 4 --json "$@"; }
nvidia-smi --query-gpu=name,compute_mode --format=csv,noheader
echo "time-sliced:"; measure "$@"
if ! command -v nvidia-cuda-mps-control > /dev/null; then
  echo "no nvidia-cuda-mps-control on this machine: MPS not measured"; exit 0
fi
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
nvidia-cuda-mps-control -d || { echo "the MPS daemon did not start"; exit 1; }
echo "mps:"; measure "$@"; status=$?
echo quit | nvidia-cuda-mps-control
exit $status
