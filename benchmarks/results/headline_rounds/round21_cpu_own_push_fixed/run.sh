#!/usr/bin/env bash
# Round 21 (benchmarks/RESULTS.md): one member of configs/gpu.yaml on MuJoCo C (2 cores), own_push fixed, 15.7 M env
# steps, then its checkpoints of iterations 80 and 120 held out (calculator protocol, 300 envs, seeds 7 and 11).
# Run from the repository root after the README's install; ~15 min per arm, one arm at a time.
#   bash benchmarks/results/headline_rounds/round21_cpu_own_push_fixed/run.sh
set -u
out=${OUT:-/tmp/round21}
mkdir -p "$out"
echo "task: {}" > "$out/full_task.yaml"  # MAPush's full task for the held-out episodes
# own_push, run seed, curriculum.enabled (the headline's GPU file has no curriculum; one arm kept the default one)
for arm in "0.05 0 true" "0.05 0 false" "0.02 0 false" "0.05 1 false" "0.02 1 false"; do
  read -r own seed curriculum <<< "$arm"
  name=own${own}_seed$seed; [[ $curriculum == false ]] && name=nocur_$name
  SECONDS=0
  python -m population.run configs/gpu.yaml --storage "$out/$name" --set simulator.backend=mujoco \
    --set simulator.device=cpu --set run.resources.gpus=0 --set run.resources.cpus=2 \
    --set rewards.scales.own_push=$own --set curriculum.enabled=$curriculum \
    --set run.stop.env_steps=15728640 --set run.checkpoint_every_iterations=40 \
    --set evaluation.interval_iterations=40 --set run.seed=$seed > "$out/$name.log" 2>&1
  echo "$name exit $? wall $SECONDS s" >> "$out/wall.txt"
  for checkpoint in "$out/$name"/*/member_0*/checkpoint_00000[12]; do  # iterations 80 and 120
    for heldout in 7 11; do
      python -m mapush_rllib.evaluate --policy "$checkpoint" --config "$out/full_task.yaml" --num-envs 300 \
        --seed $heldout --json > "$out/${name}_$(basename "$checkpoint")_seed$heldout.json"
    done
  done
done
