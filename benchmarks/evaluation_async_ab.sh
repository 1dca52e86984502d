#!/usr/bin/env bash
# Issues 13 and 14: `configs/pbt_gpu.yaml` under CUDA MPS with the member's blocking evaluation, then with the
# evaluation beside the member (`evaluation.asynchronous`), one after the other on the same machine in one device
# call (after `gpu_setup.sh install` and `export PYTHONPATH=/tmp/site:<checkout>`):
#   OUT=$OUT LIMIT_S=170 bash benchmarks/evaluation_async_ab.sh [--set KEY=VALUE ...]   # ~2 x (LIMIT_S + 15) s
# (the settings go to both arms; CONFIG, CKPT_EVERY and MPS=0 as for headline_seed.sh, e.g. for a dry run on CPU:
#   MPS=0 CONFIG=configs/pbt_smoke.yaml CKPT_EVERY=1 LIMIT_S=60 bash benchmarks/evaluation_async_ab.sh \
#     --set evaluation.lead_iterations=1)
# Each arm is `headline_seed.sh whole` on run seed 0, stopped by LIMIT_S. $OUT gets summary_<arm>.json
# (`population_summary.py`: the population's env-steps/s; per member its iterations, the evaluation's cost to it,
# eval_s, and the protocol's own time, eval_protocol_s) and ab.tar.gz with both arms' files (logs, PBT decisions,
# nvidia-smi, checkpoints): the device brings back 8 files at most.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/evaluation_async_ab}
stage=/tmp/evaluation_async_ab_arms
rm -rf "$stage" && mkdir -p "$OUT" "$stage"
for arm in blocking asynchronous; do
  settings=()
  [[ $arm == asynchronous ]] && settings=(--set evaluation.asynchronous=true)
  OUT=$stage/$arm SEED=0 LIMIT_S=${LIMIT_S:-170} TIME_S=1000 MPS=${MPS:-1} bash benchmarks/headline_seed.sh whole \
    "${settings[@]}" "$@" > "$stage/$arm.txt" 2>&1
  run=$(ls -d /tmp/runs/seed_0/*/ | tail -1)
  python3 benchmarks/population_summary.py "$run" > "$OUT/summary_$arm.json"
  grep -h "evaluation process\|Traceback" "$stage/$arm/whole.log" | head -20 >> "$OUT/summary_$arm.json.notes"
done
tar -czf "$OUT/ab.tar.gz" -C "$stage" .
ls -la "$OUT"
