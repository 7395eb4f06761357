"""Import the pack's pure modules without the host (bench/pack_pure.py does it for everyone)."""
import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACK_DIR / "bench"))
from pack_pure import load_pure  # noqa: E402,F401
