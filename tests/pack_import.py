"""Import the pack's pure modules without the host (the pack folder name has dashes)."""
import importlib
import sys
import types
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parents[1]
PACK_DIR = PACK_DIR
ALIAS = "safety_pack_under_test"


def load_pure(module):
    """Import `nodes.<module>` from this checkout without running the pack's __init__."""
    if ALIAS not in sys.modules:
        pkg = types.ModuleType(ALIAS)
        pkg.__path__ = [str(PACK_DIR)]
        sys.modules[ALIAS] = pkg
    return importlib.import_module(f"{ALIAS}.nodes.{module}")
