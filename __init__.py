"""Safety without semantic disruption for ComfyUI (arXiv 2411.13982).

The host loads this pack through its V3 entry point, `comfy_entrypoint`.
"""
from .nodes.extension import comfy_entrypoint

__version__ = "0.1.0"
__all__ = ["comfy_entrypoint"]
