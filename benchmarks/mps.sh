# CUDA MPS for the benchmark scripts (sourced): kernels of the processes sharing one GPU run side by side instead
# of taking turns (benchmarks/RESULTS.md, "CUDA MPS against time-slicing"). A user-level control daemon with its
# pipe and log folders under /tmp; the GPU's settings (compute mode, MIG) are not touched. Every CUDA process
# started after `mps_start` with these variables in its environment (Ray's workers inherit them) is an MPS client.
export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log

mps_start() {  # returns 1 where the machine has no MPS or its daemon does not start
  command -v nvidia-cuda-mps-control > /dev/null || { echo "no nvidia-cuda-mps-control on this machine"; return 1; }
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  # ours runs if a control daemon does and its socket is in our pipe folder (one with another folder serves no
  # client of ours: then starting ours fails with the daemon's message)
  if pgrep -x nvidia-cuda-mps-control > /dev/null && [[ -e $CUDA_MPS_PIPE_DIRECTORY/control ]]; then
    echo "MPS daemon already running"; return 0
  fi
  nvidia-cuda-mps-control -d || { echo "the MPS daemon did not start"; return 1; }
  echo "MPS daemon started"
}

mps_stop() { echo quit | nvidia-cuda-mps-control; }
