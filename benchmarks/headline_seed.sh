#!/usr/bin/env bash
# Issue 17's headline run for one seed: `python -m population.run configs/pbt_gpu.yaml` on one GPU within a
# wall-clock budget longer than one device call (10 min at most), so it runs in two calls back to back:
#   SEED=1 LIMIT_S=540 bash benchmarks/headline_seed.sh start  [--set KEY=VALUE ...]   # stopped by LIMIT_S
#   SEED=1 LIMIT_S=420 bash benchmarks/headline_seed.sh resume [the same --set ...]    # --resume, then pack
#   SEED=1 LIMIT_S=560 bash benchmarks/headline_seed.sh baseline [--set ...]   # plain separate-policy PPO, alone
#   SEED=1 LIMIT_S=540 TIME_S=430 bash benchmarks/headline_seed.sh whole [--set ...]  # one call: start, then pack
# (after `gpu_setup.sh install` and `export PYTHONPATH=/tmp/site:<checkout>`). The run ends by itself once each
# member has trained TIME_S seconds (run.stop.time_s, Tune's time_total_s: carried through the resume); the wall
# time of both calls, start-up included, is what the issue's 15-minute budget counts (wall.txt).
# Files under $OUT: wall.txt (per call: exit status, wall time, launch time in epoch seconds), <phase>.log and,
# after `resume` or `whole`, seed_<k>.tar.gz: per member its best evaluated checkpoint
# (population.checkpoint_retention) and its newest complete one (copies without the simulators' state, `python -m
# mapush_rllib.checkpoints share`, as member_<i>/best/checkpoint_<n> and member_<i>/newest/...), its progress.csv
# and result.json, Tune's PBT logs and the resolved experiment; evaluate them on CPU with
# `python -m mapush_rllib.evaluate --policy <checkpoint>`, draw the lineage and the best member's GIF with
# `python -m population.report seed_<k>`, list every own evaluation with `benchmarks/headline_curves.py`.
# MPS=1: the members share the GPU through a CUDA MPS daemon (benchmarks/mps.sh), started by the first call that
# finds none and stopped after `resume`, `whole` or `baseline`; nvidia_smi_<phase>.txt: the clients at 120 s.
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The baseline (`baseline`): `configs/gpu.yaml` without curriculum (one member alone on the GPU, MAPush's rewards,
# no PBT), the same seed, stopped by LIMIT_S; every complete checkpoint (each EVERY iterations) is packed into
# $OUT/plain_<k>.tar.gz, to be evaluated on CPU at the env-step marks the population reached.
phase=${1:?start, resume, whole or baseline}; shift
SEED=${SEED:-0}
OUT=${OUT:-/tmp/headline_seed}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 RAY_AUTH_MODE=disabled

# A call stopped by LIMIT_S loses the iterations since its members' newest checkpoint: with the config's 30,
# round 16 trained 29-30 iterations per member (~95 s of its 896) again after the resume; every 10 here.
population=(--set "run.stop.time_s=${TIME_S:-750}" --set "run.checkpoint_every_iterations=${CKPT_EVERY:-10}")
case $phase in
  start|whole) STORAGE=/tmp/runs/seed_$SEED; rm -rf "$STORAGE"; settings=("${population[@]}") ;;
  resume) STORAGE=/tmp/runs/seed_$SEED; settings=(--resume "${population[@]}") ;;
  baseline) STORAGE=/tmp/runs/plain_$SEED; rm -rf "$STORAGE"; EVERY=${EVERY:-80}
    settings=(--set curriculum.enabled=false --set "run.checkpoint_every_iterations=$EVERY"
              --set "evaluation.interval_iterations=$EVERY") ;;
  *) echo "unknown phase $phase: start, resume, whole or baseline" >&2; exit 2 ;;
esac
[[ $phase == baseline ]] && CONFIG=${CONFIG:-configs/gpu.yaml} || CONFIG=${CONFIG:-configs/pbt_gpu.yaml}
if [[ ${MPS:-0} == 1 ]]; then
  source benchmarks/mps.sh
  (set -o pipefail; mps_start | tee -a "$OUT/wall.txt") || exit 1
  # a snapshot of the clients during the run (not synchronisation)
  (sleep 120; nvidia-smi > "$OUT/nvidia_smi_$phase.txt" 2>&1) < /dev/null > /dev/null 2>&1 &
fi
SECONDS=0
launched=$(date +%s)
timeout "${LIMIT_S:-540}" python3 -m population.run "$CONFIG" --storage "$STORAGE" "${settings[@]}" \
  --set "run.seed=$SEED" "$@" > "$OUT/$phase.log" 2>&1
status=$?
echo "$phase: population.run exit $status (124: stopped by LIMIT_S), wall $SECONDS s, launched $launched" \
  | tee -a "$OUT/wall.txt"
[[ $phase == start ]] && exit 0
[[ ${MPS:-0} == 1 ]] && mps_stop

[[ $phase == baseline ]] && name=plain_$SEED || name=seed_$SEED
pack=/tmp/pack/$name
rm -rf "$pack" && mkdir -p "$pack"
python3 - "$STORAGE" "$pack" "$phase" <<'EOF'
"""Copy each member's best evaluated and newest complete checkpoint (the baseline: every complete one), with
its logs, into the pack."""
import shutil
import sys
from pathlib import Path

from mapush_rllib.checkpoints import newest_complete, share
from population.checkpoint_retention import best_checkpoint, recorded_checkpoints

storage, pack, phase = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
run = sorted(p for p in storage.iterdir() if p.is_dir())[-1]
for name in ("experiment.yaml", "population.json", "pbt_global.txt"):
    if (run / name).exists():
        shutil.copy(run / name, pack / name)
for trial in sorted(run.glob("member_*")):
    member = pack / "_".join(trial.name.split("_")[:2])
    member.mkdir()
    for name in ("progress.csv", "params.json", "result.json"):  # result.json: `population.report` (lineage)
        if (trial / name).exists():
            shutil.copy(trial / name, member / name)
    trial_id = trial.name.split("_", 2)[2]  # member_<k>_<Tune trial id>
    if (run / f"pbt_policy_{trial_id}.txt").exists():
        shutil.copy(run / f"pbt_policy_{trial_id}.txt", member / "pbt_policy.txt")
    best, (newest, _) = best_checkpoint(trial), newest_complete(trial)
    chosen = [("best", best), ("newest", newest)]
    if phase == "baseline":
        chosen = [("ckpt", checkpoint) for checkpoint in recorded_checkpoints(trial)[0]]
    for label, checkpoint in chosen:
        if checkpoint is not None:
            # <member>/<label>/checkpoint_<k>: a checkpoint folder name, so `evaluate --policy <member>` and
            # `population.report <pack>` find the newest one; a `share` copy is ~0.5 MB, not 6 MB
            share(checkpoint.path, member / label / checkpoint.path.name)
            print(member.name, label, checkpoint.path.name, "iteration", checkpoint.training_iteration)
EOF
tar -czf "$OUT/$name.tar.gz" -C /tmp/pack "$name"
ls -la "$OUT"
