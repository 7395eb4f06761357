#!/usr/bin/env bash
# Set up (or reuse) what the browser tests need, offline apart from the package registries:
#   - Debian's Chromium (/usr/bin/chromium), installed with apt-get when missing (needs root);
#   - the Python client `playwright` in the pack's venv, driving that Chromium through
#     `executable_path` (its own browser download, `playwright install`, is never used).
# Idempotent: each step is skipped when what it installs is already there.
# CHROMIUM=/path/to/chromium uses another Chromium build instead of Debian's.
set -euo pipefail

PACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$PACK_DIR/.build}"
VENV="${VENV:-$BUILD_DIR/venv}"
PY="$VENV/bin/python"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
PLAYWRIGHT_SPEC="${PLAYWRIGHT_SPEC:-playwright>=1.40,<2}"

say() { printf '[setup-browser] %s\n' "$*"; }

[ -x "$PY" ] || { echo "[setup-browser] $PY is missing: run scripts/setup_host.sh first" >&2; exit 2; }

# 1. Chromium from Debian's packages -----------------------------------------------
if [ -x "$CHROMIUM" ]; then
  say "chromium present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
else
  if [ "$(id -u)" != 0 ]; then
    echo "[setup-browser] $CHROMIUM is missing and this is not root: install Debian's 'chromium' package" \
         "(sudo apt-get install chromium) or set CHROMIUM=/path/to/chromium" >&2
    exit 3
  fi
  say "installing Debian's chromium (apt-get; a few minutes the first time)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
  say "installed: $("$CHROMIUM" --version)"
fi

# 2. The Playwright client (Python) --------------------------------------------------
if "$PY" -c "import playwright.sync_api" 2>/dev/null; then
  say "python playwright present: $("$PY" -m pip --disable-pip-version-check show playwright 2>/dev/null | sed -n 's/^Version: //p')"
else
  say "installing the python client '$PLAYWRIGHT_SPEC' into $VENV (no browser download: it drives $CHROMIUM)"
  "$PY" -m pip install --disable-pip-version-check --quiet --progress-bar off "$PLAYWRIGHT_SPEC"
fi

# 3. Smoke check: the client can start this Chromium headless ------------------------
CHROMIUM="$CHROMIUM" "$PY" - <<'PYEOF'
import os, tempfile
from playwright.sync_api import sync_playwright
exe = os.environ["CHROMIUM"]
with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
    ctx = p.chromium.launch_persistent_context(
        profile, executable_path=exe, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"])
    page = ctx.new_page()
    page.set_content("<p id=x>ok</p>")
    assert page.inner_text("#x") == "ok"
    print(f"[setup-browser] headless chromium {ctx.browser.version if ctx.browser else ''} answers the client")
    ctx.close()
PYEOF
