#!/usr/bin/env bash
# benchmarks/gpu_sharing.py twice on the lent GPU machine (torch only, no wheels needed): as the GPU is, then with
# a CUDA MPS daemon started for the measurement (pipe and log folders under /tmp) and stopped after it; the GPU's
# settings are not touched.
#   bash benchmarks/gpu_sharing.sh [--seconds 5]      # prints the JSON lines of both modes
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nvidia-smi --query-gpu=name,compute_mode --format=csv,noheader
python3 benchmarks/gpu_sharing.py --mode time-sliced "$@"
if ! command -v nvidia-cuda-mps-control > /dev/null; then
  echo "no nvidia-cuda-mps-control on this machine: MPS not measured"; exit 0
fi
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log
mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
nvidia-cuda-mps-control -d && echo "MPS daemon started"
python3 benchmarks/gpu_sharing.py --mode mps "$@"
echo quit | nvidia-cuda-mps-control && echo "MPS daemon stopped"
tail -3 "$CUDA_MPS_LOG_DIRECTORY"/control.log 2>/dev/null
