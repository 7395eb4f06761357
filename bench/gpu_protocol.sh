#!/usr/bin/env bash
# One-shot GPU run of the concept-world protocol (make bench-efficacy) on a CUDA machine:
# trains the protocol's worlds there (cached under $SAFETY_CACHE_DIR), then tunes every method
# on dev and evaluates on test, through the in-process host on the GPU. Writes table.md,
# results.json and the plots to $OUT/efficacy (or bench/results/efficacy), and the worlds'
# info.json files (training time, UNet checksum) as world_info.json beside them.
# `region` runs the region benchmark (region_bench.py: global merge against region auto at ours'
# dev-chosen point) for every world, after the protocol (it reads the results.json the protocol step
# wrote here, else the committed one).
# Usage: bash bench/gpu_protocol.sh [STEPS|all] [--worlds 0,1] [--mmdit-worlds 0,1,2]
# [protocol_bench.py arguments], STEPS a comma list of train, protocol, region, mmdit. The worlds
# train side by side, and their protocols run side by side too, one process per world (each writes
# $OUT/efficacy_worlds/<arch>_world_<seed>/, merged into $OUT/efficacy or $OUT/efficacy_mmdit at
# the end); the transformer worlds' processes start first, beside the SD1.5 training. On an H200 both worlds trained in about 2.3 minutes and one
# world's protocol took 314 s alone (how much two overlap there is not yet measured). Every
# setting's samples are kept in the run cache ($SAFETY_CACHE_DIR/protocol_runs, under .build/,
# which a warm machine keeps between calls), so the plan for one device session is:
#   1. `bash bench/gpu_protocol.sh train,protocol` (timeout 600);
#   2. if the 10-minute limit cut it, at once (the machine goes back after a short idle time, and
#      the cache with it) `bash bench/gpu_protocol.sh protocol`: it goes on where call 1 stopped;
#   3. copy $OUT/efficacy/ into bench/results/efficacy/.
# `mmdit` runs the transformer worlds' protocol (concept_world/protocol_mmdit.json; the shipped
# weights, sha256-checked, trained on the CPU) for the --mmdit-worlds seeds into $OUT/efficacy_mmdit
# (copy it into bench/results/efficacy_mmdit/); it is not part of `all`.
# Worlds of the committed results.json that a call does not redo are kept. SAFETY_HOST_CPU=1 runs
# the script on the CPU (a smoke test with --small; the worlds must already be in
# $SAFETY_CACHE_DIR).
source "$(dirname "${BASH_SOURCE[0]}")/gpu_host.sh"
what="${1:-all}"; shift || true
worlds=""
mmdit_worlds=""
while [ "${1:-}" = "--worlds" ] || [ "${1:-}" = "--mmdit-worlds" ]; do
  if [ "$1" = "--worlds" ]; then worlds="$2"; else mmdit_worlds="$2"; fi; shift 2
done
[ -n "$worlds" ] || worlds="$("$PYTHON" -c "import json; print(','.join(map(str, json.load(open('$REPO/concept_world/protocol.json'))['world_seeds'])))")"
[ -n "$mmdit_worlds" ] || mmdit_worlds="$("$PYTHON" -c "import json; print(','.join(map(str, json.load(open('$REPO/concept_world/protocol_mmdit.json'))['world_seeds'])))")"
wants() { [ "$what" = all ] || [[ ",$what," == *",$1,"* ]]; }   # steps: a comma list, or all
wants_mmdit() { [[ ",$what," == *",mmdit,"* ]]; }   # not part of all
# the cache lives in the repository's ignored .build/, which a warm machine keeps between calls
export SAFETY_HOST_CPU="${SAFETY_HOST_CPU:-0}" SAFETY_CACHE_DIR="${SAFETY_CACHE_DIR:-$REPO/.build/gpu-cache}" PYTHONUNBUFFERED=1
DEST="$RESULTS/efficacy"
mkdir -p "$DEST"
cd "$REPO"
# one protocol process per world, all side by side (each mostly waits on its own Python and small
# kernels); CPU threads split between them. ARCH DEST SEEDS: the worlds of one architecture.
pids=(); dirs=(); archs=()
launch() {
  local arch="$1" dest="$2" seeds="$3" threads="$4" seed dir
  for seed in ${seeds//,/ }; do
    dir="$RESULTS/efficacy_worlds/${arch}_world_$seed"; mkdir -p "$dir"
    OMP_NUM_THREADS=$threads "$PYTHON" -m bench.efficacy.protocol_bench --arch "$arch" --worlds "$seed" --out "$dir" \
      --run-cache "$SAFETY_CACHE_DIR/protocol_runs" "${PROTOCOL_ARGS[@]}" > "$dir/protocol.log" 2>&1 &
    pids+=($!); dirs+=("$dir"); archs+=("$arch")
  done
}
finish() {   # ARCH DEST: wait for that architecture's processes, then merge them into DEST
  local arch="$1" dest="$2" committed i rc failed=0 mine=()
  committed="$REPO/bench/results/$(basename "$dest")/results.json"
  mkdir -p "$dest"
  if [ ! -f "$dest/results.json" ] && [ -f "$committed" ]; then cp "$committed" "$dest/results.json"; fi
  for i in "${!pids[@]}"; do
    [ "${archs[$i]}" = "$arch" ] || continue
    rc=0; wait "${pids[$i]}" || rc=$?
    # exit 2: the run finished but a validity gate failed (the table says which); anything else failed
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
      failed=1; say "the protocol of ${dirs[$i]} failed (exit $rc); the end of its log:"; tail -30 "${dirs[$i]}/protocol.log"
    fi
    mine+=("${dirs[$i]}")
  done
  [ "${#mine[@]}" -gt 0 ] || return 0
  grep -h -v "^WARNING" "${mine[@]/%//protocol.log}" > "$dest/protocol.log" || true
  grep -h "^\[protocol\] dev choice\|validity gates" "$dest/protocol.log" || true
  if [ "$failed" = 0 ]; then
    "$PYTHON" -m bench.efficacy.protocol_bench --arch "$arch" --out "$dest" --add --merge "${mine[@]}" \
      "${PROTOCOL_ARGS[@]}" 2>&1 | grep -v "^WARNING" || true
  fi
}
PROTOCOL_ARGS=("$@")
n=0
wants protocol && n=$(( n + $(echo "${worlds//,/ }" | wc -w) ))
wants_mmdit && n=$(( n + $(echo "${mmdit_worlds//,/ }" | wc -w) ))
threads=$(( $(nproc) / (n > 0 ? n : 1) )); [ "$threads" -ge 1 ] || threads=1
# the transformer worlds are shipped (nothing to train): they start at once, beside the SD1.5 training
wants_mmdit && launch mmdit "$RESULTS/efficacy_mmdit" "$mmdit_worlds" "$threads"
if wants train; then
  # the worlds train side by side (small batches leave the GPU mostly idle)
  train_pids=()
  for seed in ${worlds//,/ }; do
    "$PYTHON" -m concept_world.build --comfyui "$COMFY" --seeds "$seed" --no-gates > "$WORK/train_$seed.log" 2>&1 &
    train_pids+=($!)
  done
  wait "${train_pids[@]}"   # not the transformer worlds' protocols, which run on
  grep -h -v "^WARNING" "$WORK"/train_*.log | grep -v "^\[world\] step" > "$DEST/train.log" || true
  grep -h "^\[world\] step" "$WORK"/train_*.log | tail -4 >> "$DEST/train.log" || true
  cat "$SAFETY_CACHE_DIR"/concept_world/*/info.json > "$DEST/world_info.json" || say "no world info.json in $SAFETY_CACHE_DIR"
fi
if wants protocol; then
  launch sd15 "$DEST" "$worlds" "$threads"
  finish sd15 "$DEST"
fi
wants_mmdit && finish mmdit "$RESULTS/efficacy_mmdit"
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
say "done in $(( $(date +%s) - t0 )) s"
