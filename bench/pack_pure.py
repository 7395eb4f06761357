"""Import the pack's pure modules (nodes/*.py that need no host) without running the pack's
__init__: the pack folder's name has dashes, and `nodes` may already be the host's nodes.py.
Shared by the benchmarks, the gate trainer and the tests."""
import importlib
import sys
import types
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parents[1]
ALIAS = "safety_pack_pure"


def load_pure(module):
    """Import `nodes.<module>` from this checkout (relative imports between pure modules work)."""
    if ALIAS not in sys.modules:
        pkg = types.ModuleType(ALIAS)
        pkg.__path__ = [str(PACK_DIR)]
        sys.modules[ALIAS] = pkg
    return importlib.import_module(f"{ALIAS}.nodes.{module}")
