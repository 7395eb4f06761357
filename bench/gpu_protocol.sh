#!/usr/bin/env bash
# One-shot GPU run of the concept-world protocol (make bench-efficacy) on a CUDA machine:
# trains the protocol's worlds there (cached under $SAFETY_CACHE_DIR), then tunes every method
# on dev and evaluates on test, through the in-process host on the GPU. Writes table.md,
# results.json and the plots to $OUT/efficacy (or bench/results/efficacy), and the worlds'
# info.json files (training time, UNet checksum) as world_info.json beside them.
# `region` runs the region benchmark (region_bench.py: global merge against region auto at ours'
# dev-chosen point) for every world, after the protocol (it reads the results.json the protocol step
# wrote here, else the committed one).
# Usage: bash bench/gpu_protocol.sh [STEPS|all] [--worlds 0,1] [protocol_bench.py arguments], STEPS a
# comma list of train, protocol, region. The worlds train side by side, and their protocols run
# side by side too, one process per world (each writes $OUT/efficacy_worlds/world_<seed>/, merged
# into $OUT/efficacy at the end). On an H200 both worlds trained in about 2.3 minutes and one
# world's protocol took 314 s alone (how much two overlap there is not yet measured). Every
# setting's samples are kept in the run cache ($SAFETY_CACHE_DIR/protocol_runs, under .build/,
# which a warm machine keeps between calls), so the plan for one device session is:
#   1. `bash bench/gpu_protocol.sh train,protocol` (timeout 600);
#   2. if the 10-minute limit cut it, at once (the machine goes back after a short idle time, and
#      the cache with it) `bash bench/gpu_protocol.sh protocol`: it goes on where call 1 stopped;
#   3. copy $OUT/efficacy/ into bench/results/efficacy/.
# `mmdit` runs the transformer worlds' protocol (concept_world/protocol_mmdit.json; the shipped
# weights, sha256-checked) for every seed into $OUT/efficacy_mmdit (copy it into
# bench/results/efficacy_mmdit/); it is not part of `all`.
# Worlds of the committed results.json that a call does not redo are kept. SAFETY_HOST_CPU=1 runs
# the script on the CPU (a smoke test with --small; the worlds must already be in
# $SAFETY_CACHE_DIR).
source "$(dirname "${BASH_SOURCE[0]}")/gpu_host.sh"
what="${1:-all}"; shift || true
worlds=""
if [ "${1:-}" = "--worlds" ]; then worlds="$2"; shift 2; fi
[ -n "$worlds" ] || worlds="$("$PYTHON" -c "import json; print(','.join(map(str, json.load(open('$REPO/concept_world/protocol.json'))['world_seeds'])))")"
wants() { [ "$what" = all ] || [[ ",$what," == *",$1,"* ]]; }   # steps: a comma list, or all
# the cache lives in the repository's ignored .build/, which a warm machine keeps between calls
export SAFETY_HOST_CPU="${SAFETY_HOST_CPU:-0}" SAFETY_CACHE_DIR="${SAFETY_CACHE_DIR:-$REPO/.build/gpu-cache}" PYTHONUNBUFFERED=1
DEST="$RESULTS/efficacy"
mkdir -p "$DEST"
cd "$REPO"
if wants train; then
  # the worlds train side by side (small batches leave the GPU mostly idle)
  for seed in ${worlds//,/ }; do
    "$PYTHON" -m concept_world.build --comfyui "$COMFY" --seeds "$seed" --no-gates > "$WORK/train_$seed.log" 2>&1 &
  done
  wait
  grep -h -v "^WARNING" "$WORK"/train_*.log | grep -v "^\[world\] step" > "$DEST/train.log" || true
  grep -h "^\[world\] step" "$WORK"/train_*.log | tail -4 >> "$DEST/train.log" || true
  cat "$SAFETY_CACHE_DIR"/concept_world/*/info.json > "$DEST/world_info.json"
fi
if wants protocol; then
  # one process per world, side by side (each mostly waits on its own Python and small kernels);
  # CPU threads split between them
  committed="$REPO/bench/results/efficacy/results.json"
  if [ ! -f "$DEST/results.json" ] && [ -f "$committed" ]; then cp "$committed" "$DEST/results.json"; fi
  n=$(echo "${worlds//,/ }" | wc -w); threads=$(( $(nproc) / n )); [ "$threads" -ge 1 ] || threads=1
  pids=(); dirs=()
  for seed in ${worlds//,/ }; do
    dirs+=("$RESULTS/efficacy_worlds/world_$seed"); mkdir -p "${dirs[-1]}"
    OMP_NUM_THREADS=$threads "$PYTHON" -m bench.efficacy.protocol_bench --worlds "$seed" --out "${dirs[-1]}" \
      --run-cache "$SAFETY_CACHE_DIR/protocol_runs" "$@" \
      > "${dirs[-1]}/protocol.log" 2>&1 &
    pids+=($!)
  done
  failed=0
  for i in "${!pids[@]}"; do
    rc=0; wait "${pids[$i]}" || rc=$?
    # exit 2: the run finished but a validity gate failed (the table says which); anything else failed
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
      failed=1; say "the protocol of ${dirs[$i]} failed (exit $rc); the end of its log:"; tail -30 "${dirs[$i]}/protocol.log"
    fi
  done
  grep -h -v "^WARNING" "${dirs[@]/%//protocol.log}" > "$DEST/protocol.log" || true
  if [ "$failed" = 0 ]; then
    "$PYTHON" -m bench.efficacy.protocol_bench --out "$DEST" --add --merge "${dirs[@]}" "$@" 2>&1 | grep -v "^WARNING" || true
  fi
fi
if wants region; then
  for seed in ${worlds//,/ }; do
    # ours' dev choice from this machine's protocol results when the protocol ran here (else the committed ones)
    "$PYTHON" -m bench.efficacy.region_bench --world "$seed" --out "$RESULTS/region" \
      --protocol-results "$([ -f "$DEST/results.json" ] && echo "$DEST/results.json" || echo "$REPO/bench/results/efficacy/results.json")" \
      --run-cache "$SAFETY_CACHE_DIR/protocol_runs" 2>&1 | grep -v "^WARNING" \
      > "$WORK/region_$seed.log" || { say "region bench of world $seed failed"; tail -30 "$WORK/region_$seed.log"; }
    grep "^| region auto\|^| global" "$WORK/region_$seed.log" || true
  done
fi
if [[ ",$what," == *",mmdit,"* ]]; then
  mkdir -p "$RESULTS/efficacy_mmdit"
  "$PYTHON" -m bench.efficacy.protocol_bench --arch mmdit --out "$RESULTS/efficacy_mmdit" \
    --run-cache "$SAFETY_CACHE_DIR/protocol_runs" "$@" 2>&1 | grep -v "^WARNING" > "$WORK/mmdit.log" || true
  grep "^\[protocol\] dev choice\|validity gates" "$WORK/mmdit.log" || tail -30 "$WORK/mmdit.log"
fi
say "done in $(( $(date +%s) - t0 )) s"
