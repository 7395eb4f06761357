#!/usr/bin/env bash
# One-shot GPU run of the concept-world protocol (make bench-efficacy) on a CUDA machine:
# trains the protocol's worlds there (cached under $SAFETY_CACHE_DIR), then tunes every method
# on dev and evaluates on test, through the in-process host on the GPU. Writes table.md,
# results.json and the plots to $OUT/efficacy (or bench/results/efficacy), and the worlds'
# info.json files (training time, UNet checksum) as world_info.json beside them.
# `region` runs the region benchmark (region_bench.py: global merge against region auto at ours'
# dev-chosen point) for every world, after the protocol (it reads the protocol's results.json).
# Usage: bash bench/gpu_protocol.sh [STEPS|all] [protocol_bench.py arguments], STEPS a comma list of
# train, protocol, region. A fresh device machine has no trained worlds, so one call per world:
# `train,protocol --worlds 1` (about 8 minutes on an H200), copy $OUT/efficacy back into
# bench/results/efficacy/, then `train,protocol --worlds 0` in a later call.
source "$(dirname "${BASH_SOURCE[0]}")/gpu_host.sh"
what="${1:-all}"; shift || true
wants() { [ "$what" = all ] || [[ ",$what," == *",$1,"* ]]; }   # steps: a comma list, or all
# the cache lives in the repository's ignored .build/, which a warm machine keeps between calls
export SAFETY_HOST_CPU=0 SAFETY_CACHE_DIR="${SAFETY_CACHE_DIR:-$REPO/.build/gpu-cache}" PYTHONUNBUFFERED=1
DEST="$RESULTS/efficacy"
mkdir -p "$DEST"
cd "$REPO"
if wants train; then
  # the worlds train side by side (small batches leave the GPU mostly idle)
  for seed in $("$PYTHON" -c "import json; print(*json.load(open('concept_world/protocol.json'))['world_seeds'])"); do
    "$PYTHON" -m concept_world.build --comfyui "$COMFY" --seeds "$seed" --no-gates > "$WORK/train_$seed.log" 2>&1 &
  done
  wait
  grep -h -v "^WARNING" "$WORK"/train_*.log | grep -v "^\[world\] step" > "$DEST/train.log" || true
  grep -h "^\[world\] step" "$WORK"/train_*.log | tail -4 >> "$DEST/train.log" || true
  cat "$SAFETY_CACHE_DIR"/concept_world/*/info.json > "$DEST/world_info.json"
fi
if wants protocol; then
  # one world per call fits the device's 10-minute limit: the worlds of the repository's results
  # (carried in the working tree, or written by an earlier call) are kept unless this call redoes them
  committed="$REPO/bench/results/efficacy/results.json"
  if [ ! -f "$DEST/results.json" ] && [ -f "$committed" ]; then cp "$committed" "$DEST/results.json"; fi
  "$PYTHON" -m bench.efficacy.protocol_bench --out "$DEST" --add "$@" 2>&1 | grep -v "^WARNING" > "$DEST/protocol.log" \
    || { say "the protocol failed (exit ${PIPESTATUS[0]}); the end of its log:"; tail -30 "$DEST/protocol.log"; }
  tail -5 "$DEST/protocol.log"
fi
if wants region; then
  for seed in $("$PYTHON" -c "import json; print(*json.load(open('concept_world/protocol.json'))['world_seeds'])"); do
    "$PYTHON" -m bench.efficacy.region_bench --world "$seed" --out "$RESULTS/region" 2>&1 | grep -v "^WARNING" \
      > "$WORK/region_$seed.log" || { say "region bench of world $seed failed"; tail -30 "$WORK/region_$seed.log"; }
    grep "^| region auto\|^| global" "$WORK/region_$seed.log" || true
  done
fi
say "done in $(( $(date +%s) - t0 )) s"
