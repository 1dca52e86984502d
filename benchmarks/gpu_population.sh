#!/usr/bin/env bash
# The population of configs/pbt_gpu.yaml on the lent GPU machine for ITERATIONS iterations per member (default 40:
# two evaluations and PBT decisions each), after `gpu_setup.sh install` and `export PYTHONPATH=/tmp/site:<checkout>`:
#   OUT=<folder> bash benchmarks/gpu_population.sh [--set KEY=VALUE ...]      # extra settings for the run
# Files under $OUT: run.log (the console), summary.json (benchmarks/population_summary.py: population env-steps/s,
# each member's training and evaluation time), runs.tar.gz (the run folder without checkpoints).
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/gpu_population}
mkdir -p "$OUT" /tmp/runs
export PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
start=$SECONDS
timeout "${LIMIT_S:-420}" python3 -m population.run configs/pbt_gpu.yaml --storage /tmp/runs \
  --set run.stop.training_iterations="${ITERATIONS:-40}" --set run.stop.env_steps=null "$@" > "$OUT/run.log" 2>&1
echo "population.run: exit $? after $((SECONDS - start)) s" | tee -a "$OUT/run.log"
run=$(ls -d /tmp/runs/pbt_gpu_* | tail -1)
python3 benchmarks/population_summary.py "$run" | tee "$OUT/summary.json"
tar -czf "$OUT/runs.tar.gz" -C "$run" --exclude='checkpoint_*' --exclude='passed_over_*' .
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >> "$OUT/run.log"
