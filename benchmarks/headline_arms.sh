#!/usr/bin/env bash
# Issue 17's arms side by side on one GPU: one run per arm (CONFIG, default configs/gpu.yaml: one member, plus the
# arm's settings), all at once, then each member's final checkpoint on the full MAPush task by the calculator
# protocol (MuJoCo C, 300 envs, a seed not used in training). After `gpu_setup.sh install` and
# `export PYTHONPATH=/tmp/site:<checkout>`:
#   OUT=<folder> ENV_STEPS=16000000 LIMIT_S=480 bash benchmarks/headline_arms.sh arms.txt
#   CONFIG=configs/pbt_gpu.yaml OUT=<folder> ... bash benchmarks/headline_arms.sh arms.txt    # a population per arm
# arms.txt: one arm per line, `<name> [KEY=VALUE ...]` (the --set settings of that arm; `#` starts a comment).
# Files under $OUT: summary.txt (each member's evaluation in one line) and headline.tar.gz: <name>.log (console),
# <name>.member_<k>.eval.json (the evaluations) and each run folder with its final checkpoints only.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/headline}
CONFIG=${CONFIG:-configs/gpu.yaml}
EVAL_SEED=${EVAL_SEED:-1000003}
mkdir -p "$OUT" /tmp/runs
export PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled
printf 'task: {}\n' > /tmp/full_task.yaml   # the full MAPush task (4 kg box), whatever the arm trained on

names=()
set -f   # no globbing of the settings while reading them (curriculum.levels=[{...}] is a glob pattern)
while read -r name settings; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  names+=("$name")
  sets=(--set "run.name=$name" --set "run.stop.env_steps=${ENV_STEPS:-16000000}")
  for kv in $settings; do sets+=(--set "$kv"); done
  rm -rf "/tmp/runs/$name"   # evaluate --policy takes the newest run under it: this round's
  { timeout "${LIMIT_S:-480}" python3 -m population.run "$CONFIG" --storage "/tmp/runs/$name" "${sets[@]}" \
      > "$OUT/$name.log" 2>&1; echo "$name: population.run exit $? (124: stopped by LIMIT_S)" >> "$OUT/summary.txt"; } &
done < "$1"
set +f
wait
evaluate_members() {  # each member's newest checkpoint, one evaluation per member, all at once
  local name=$1 run trial member
  run=$(ls -d /tmp/runs/"$name"/"$name"_* | tail -1)
  for trial in "$run"/member_*; do
    member=$(basename "$trial" | cut -d_ -f1-2)
    python3 -m mapush_rllib.evaluate --policy "$trial" --config /tmp/full_task.yaml --num-envs 300 \
      --seed "$EVAL_SEED" --json > "$OUT/$name.$member.eval.json" 2> "$OUT/$name.$member.eval.log" &
  done
}
for name in "${names[@]}"; do evaluate_members "$name"; done
wait
for name in "${names[@]}"; do
  run=$(ls -d /tmp/runs/"$name"/"$name"_* | tail -1)
  for trial in "$run"/member_*; do  # keep the newest checkpoint only
    ls -d "$trial"/checkpoint_* 2>/dev/null | sort | head -n -1 | xargs -r rm -rf
  done
  for json in "$OUT/$name".member_*.eval.json; do
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], {k: round(d[k], 3) for k in
      ('success_rate', 'finish_time_s', 'freeloading_index', 'contribution_balance', 'task_progress') if k in d})" \
      "$json" "$(basename "$json" .eval.json)" 2>&1 | tee -a "$OUT/summary.txt"
  done
done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv >> "$OUT/summary.txt"
mkdir -p /tmp/headline_files && mv "$OUT"/*.log "$OUT"/*.json /tmp/headline_files/
tar -czf "$OUT/headline.tar.gz" -C /tmp/runs "${names[@]}" -C /tmp/headline_files .
