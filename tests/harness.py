"""Drive the real ComfyUI host from tests: in-process executor and the real HTTP server
(both live in scripts/comfy_host.py, shared with the demo and the benchmarks)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from comfy_host import (PACK_DIR, PACK_LINK_NAME, TINY_CHECKPOINT, HostServer,  # noqa: E402,F401
                        InProcessHost, comfyui_path, output_images)
