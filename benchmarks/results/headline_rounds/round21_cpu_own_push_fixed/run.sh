#!/usr/bin/env bash
# after the running own0.05_seed0 (curriculum on) ends: the headline's settings (no curriculum), own_push fixed
cd /work/main
while pgrep -f "storage /tmp/cpu_lever/own0.05_seed0 " > /dev/null; do sleep 10; done
echo "own0.05_seed0 (curriculum on) ended" >> /tmp/cpu_lever/wall.txt
export PYTHONPATH=/work/main RAY_AUTH_MODE=disabled
V=/tmp/tmp.Svk18g7qvM/venv
for arm in "0.05 0" "0.02 0" "0.05 1"; do set -- $arm; own=$1; seed=$2
  name=nocur_own${own}_seed$seed
  SECONDS=0
  $V/bin/python -m population.run configs/gpu.yaml --storage /tmp/cpu_lever/$name --set simulator.backend=mujoco \
    --set simulator.device=cpu --set run.resources.gpus=0 --set run.resources.cpus=2 --set rewards.scales.own_push=$own \
    --set curriculum.enabled=false \
    --set run.stop.env_steps=15728640 --set run.checkpoint_every_iterations=40 --set evaluation.interval_iterations=40 \
    --set run.seed=$seed > /tmp/cpu_lever/$name.log 2>&1
  echo "$name exit $? wall $SECONDS s" >> /tmp/cpu_lever/wall.txt
done
#!/usr/bin/env bash
cd /work/main
export PYTHONPATH=/work/main RAY_AUTH_MODE=disabled
V=/tmp/tmp.Svk18g7qvM/venv
own=0.02; seed=1; name=nocur_own${own}_seed$seed
SECONDS=0
$V/bin/python -m population.run configs/gpu.yaml --storage /tmp/cpu_lever/$name --set simulator.backend=mujoco \
  --set simulator.device=cpu --set run.resources.gpus=0 --set run.resources.cpus=2 --set rewards.scales.own_push=$own \
  --set curriculum.enabled=false \
  --set run.stop.env_steps=15728640 --set run.checkpoint_every_iterations=40 --set evaluation.interval_iterations=40 \
  --set run.seed=$seed > /tmp/cpu_lever/$name.log 2>&1
echo "$name exit $? wall $SECONDS s" >> /tmp/cpu_lever/wall.txt
bash /tmp/cpu_lever/heldout.sh $name
