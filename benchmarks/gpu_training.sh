#!/usr/bin/env bash
# The GPU training measurements and checks of benchmarks/RESULTS.md, in one call on the lent GPU machine, after
# `gpu_setup.sh install` of the sim and ray wheels and `export PYTHONPATH=/tmp/site:<this checkout>`:
#   OUT=<folder> bash benchmarks/gpu_training.sh [STEP ...]      # default: all steps, in this order
# Steps (train_bulk tests train_episodes member train_members warp_tests) run in order of importance, each with its
# own time limit, all inside BUDGET_S seconds (default 500: one 600 s call with the install); a failed or cut
# step does not stop the next. Files under $OUT:
#   env.txt        GPU, driver, package versions
#   train.jsonl    benchmarks/train_throughput.py lines (bulk and episodes learner batch, several members)
#   train.log      their stderr
#   profile.txt    torch.profiler op tables of one profiled iteration per size
#   tests.log      tests on CUDA
#   member.log     one member trained through `python -m population.run` (configs/gpu.yaml, 3 iterations)
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-/tmp/gpu_training}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
DEADLINE=$((SECONDS + ${BUDGET_S:-500}))
exec 3>&1  # the call's own output, for progress lines while a step's output goes to its files

STEPS=" ${*:-train_bulk tests train_episodes member train_members warp_tests} "

step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  case $STEPS in *" $name "*) ;; *) return ;; esac
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 20 ]; then echo "=== $name: skipped, budget spent" >&3; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name (limit ${limit}s): $*" >&3
  local start=$SECONDS
  timeout "$limit" "$@"
  echo "=== $name: exit $? after $((SECONDS - start)) s" >&3
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  nproc
  python3 -c "import sys, torch, warp, mujoco, mujoco_warp, ray, pydantic; print(sys.version.split()[0], 'torch', torch.__version__, 'warp', warp.__version__, 'mujoco', mujoco.__version__, 'ray', ray.__version__, 'pydantic', pydantic.VERSION)"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

GPU_TRAIN=(python3 benchmarks/train_throughput.py --json --backend mujoco_warp --device cuda --gpus 1 --runners batched)

# 1. One member end to end, bulk learner batch: 4,096 and 16,384 envs, 32 steps per env per iteration.
step train_bulk 240 "${GPU_TRAIN[@]}" --learner-batch bulk --num-envs 4096 16384 --rollout-steps 32 \
  --iterations 3 --seconds 3 --profile --torch-profile "$OUT/profile.txt" >> "$OUT/train.jsonl" 2>> "$OUT/train.log"
# 2. The bulk batch equals RLlib's connector batch with simulator tensors, runner and learner on the GPU.
step tests 100 env MAPUSH_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider -m "not ray" \
  tests/rllib/test_rollout_batch.py >> "$OUT/tests.log" 2>&1
# 3. The same member with RLlib's episode path (episode chunks + learner connectors), for the profile.
step train_episodes 90 "${GPU_TRAIN[@]}" --learner-batch episodes --num-envs 4096 --rollout-steps 32 \
  --iterations 1 --skip-raw-sample --profile >> "$OUT/train.jsonl" 2>> "$OUT/train.log"
# 4. The real entry point: a Tune trial holding one GPU.
python3 - <<'EOF'
import yaml
config = yaml.safe_load(open("configs/gpu.yaml"))
config["run"].update(name="gpu_smoke", stop={"training_iterations": 3}, checkpoint_every_iterations=2, storage="/tmp/runs")
yaml.safe_dump(config, open("/tmp/gpu_smoke.yaml", "w"))
EOF
step member 100 python3 -m population.run /tmp/gpu_smoke.yaml >> "$OUT/member.log" 2>&1
[ -e "$OUT/member.log" ] && tail -n 2 "$OUT/member.log"
# 5. Several members sharing the GPU (as Tune trials with run.resources.gpus = 1/K).
step train_members 150 "${GPU_TRAIN[@]}" --learner-batch bulk --num-envs 4096 --rollout-steps 32 \
  --iterations 3 --skip-raw-sample --members 2 4 >> "$OUT/train.jsonl" 2>> "$OUT/train.log"
# 6. The Warp backend's own tests on the GPU (the task layer changed since they last ran there).
step warp_tests 60 env MAPUSH_WARP_TEST_DEVICE=cuda python3 -m pytest -q -p no:cacheprovider \
  tests/sim/test_warp_backend.py >> "$OUT/tests.log" 2>&1

echo "=== tests"
[ -e "$OUT/tests.log" ] && grep -E "passed|failed|error" "$OUT/tests.log" | tail -n 5
echo "=== train.jsonl"
[ -e "$OUT/train.jsonl" ] && cat "$OUT/train.jsonl"
