#!/usr/bin/env bash
# Install the project's missing Python packages on the offline GPU machine, from wheels carried in parts.
#
# The lent GPU machines (Python 3.12, torch with CUDA, no internet) lack MuJoCo, MuJoCo Warp, Warp, pydantic and
# Ray, and one transfer carries at most 64 MiB, while warp-lang alone is 142 MiB. So the wheels travel as one tar
# split into parts of what the checkout leaves of a transfer, one part per `run` call, kept outside the checkout
# on the machine until the last part arrives (the machine stays warm ~30 s after a call: make the calls back to back).
#
# Here (a machine with pip and the package index), once:
#   bash benchmarks/gpu_setup.sh download sim      # MuJoCo Warp set: mujoco, mujoco-warp, warp-lang, pydantic
#   bash benchmarks/gpu_setup.sh download ray      # optional: Ray RLlib set, ray without its Java jars
#   bash benchmarks/gpu_setup.sh pack              # -> .whl/part-1/ ... .whl/part-N/, prints the run calls
# On the GPU machine, one `run` call per part, each carrying its folder (.whl/part-K):
#   bash benchmarks/gpu_setup.sh stash             # calls 1 .. N-1: keep the carried part in /tmp/gpu_parts
#   bash benchmarks/gpu_setup.sh install && export PYTHONPATH=/tmp/site && ...   # call N: join, check, install
# then, in the same call, whatever needs the packages (benchmarks/RESULTS.md has the exact commands).
#
# WHEELS (default .whl, relative to the repository root, or absolute) holds the wheels and parts; .whl/ is
# git-ignored, so a part travels only when its folder is named in `carry`.

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WHEELS=${WHEELS:-.whl}
PARTS_DIR=/tmp/gpu_parts
SITE=/tmp/site
TRANSFER_BYTES=67108864  # 64 MiB: one call carries the checkout's files and one part

# The packages the GPU image lacks, pinned to what the project is tested with (cp312, manylinux x86_64).
SIM_WHEELS=(mujoco==3.17.0 mujoco-warp==3.17.0 warp-lang==1.19.0
            pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5)
# shared/research/rllib.md §9: what ray[rllib,tune] needs beyond the image (ray itself is repacked without jars).
RAY_WHEELS=(ray==2.60.0 jsonschema==4.26.0 referencing==0.37.0 rpds-py==2026.9.1 jsonschema-specifications==2025.9.1
            dm-tree==0.1.10 gymnasium==1.2.2 farama-notifications==0.0.6 lz4==4.4.5 ormsgpack==1.13.1
            tensorboardX==2.6.5)

download() {
  local wheels=()
  for set in "$@"; do
    case $set in
      sim) wheels+=("${SIM_WHEELS[@]}") ;;
      ray) wheels+=("${RAY_WHEELS[@]}") ;;
      *) echo "download: unknown set '$set' (sim, ray)" >&2; exit 2 ;;
    esac
  done
  mkdir -p "$WHEELS/wheels"
  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHEELS/wheels" "${wheels[@]}"
  for ray in "$WHEELS"/wheels/ray-*.whl; do  # the Java worker (31 MiB) is not used from Python
    [ -e "$ray" ] && zip -q -d "$ray" 'ray/jars/*' || true
  done
  ls -l "$WHEELS/wheels"
}

pack() {
  rm -rf "$WHEELS"/part-* "$WHEELS/bundle.tar"
  tar -cf "$WHEELS/bundle.tar" -C "$WHEELS" wheels
  local checkout part_bytes  # a part fills what the checkout (committed results grow it) leaves, less 4 MiB
  checkout=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
  part_bytes=$((TRANSFER_BYTES - checkout - 4194304))
  echo "checkout $checkout bytes: parts of $part_bytes bytes"
  split -b "$part_bytes" -d -a 1 --numeric-suffixes=1 "$WHEELS/bundle.tar" "$WHEELS/bundle.tar."
  local sum parts
  sum=$(sha256sum "$WHEELS/bundle.tar" | cut -d' ' -f1)
  parts=$(ls "$WHEELS"/bundle.tar.* | wc -l)
  for part in "$WHEELS"/bundle.tar.*; do
    local k=${part##*.}
    mkdir -p "$WHEELS/part-$k"
    mv "$part" "$WHEELS/part-$k/"
    echo "$sum $parts" > "$WHEELS/part-$k/BUNDLE"
  done
  rm "$WHEELS/bundle.tar"
  du -b "$WHEELS"/part-*/* | sed 's/^/  /'
  echo "run calls, back to back (each carries one part):"
  for k in $(seq 1 "$parts"); do
    if [ "$k" -lt "$parts" ]; then
      echo "  carry [\"$WHEELS/part-$k\"]  command: bash benchmarks/gpu_setup.sh stash"
    else
      echo "  carry [\"$WHEELS/part-$k\"]  command: bash benchmarks/gpu_setup.sh install && export PYTHONPATH=$SITE && ..."
    fi
  done
}

stash() {
  mkdir -p "$PARTS_DIR"
  local found=0
  for part in "$WHEELS"/part-*/bundle.tar.*; do
    [ -e "$part" ] || continue
    cp "$part" "$(dirname "$part")/BUNDLE" "$PARTS_DIR/" && found=1
    echo "stashed $(basename "$part")"
  done
  [ "$found" = 1 ] || { echo "stash: no carried part under $WHEELS/part-*/" >&2; return 1; }
  ls -l "$PARTS_DIR"
}

install() {
  stash
  local sum parts have
  read -r sum parts < "$PARTS_DIR/BUNDLE"
  have=$(ls "$PARTS_DIR"/bundle.tar.* | wc -l)
  if [ "$have" != "$parts" ]; then
    echo "install: $have of $parts parts in $PARTS_DIR; the machine was given back between calls? start again" >&2
    return 1
  fi
  cat "$PARTS_DIR"/bundle.tar.* > /tmp/bundle.tar
  echo "$sum  /tmp/bundle.tar" | sha256sum -c -
  rm -rf /tmp/bundle && mkdir -p /tmp/bundle && tar -xf /tmp/bundle.tar -C /tmp/bundle && rm /tmp/bundle.tar
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    /tmp/bundle/wheels/*.whl
  echo "installed into $SITE (export PYTHONPATH=$SITE):" $(cd /tmp/bundle/wheels && ls *.whl | cut -d- -f1,2)
}

case "${1:-}" in
  download) shift; download "$@" ;;
  pack) pack ;;
  stash) stash ;;
  install) install ;;
  *) echo "usage: gpu_setup.sh download sim|ray ... | pack | stash | install (see the header)" >&2; exit 2 ;;
esac
