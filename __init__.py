"""Safety without semantic disruption for ComfyUI (arXiv 2411.13982).

The host loads this pack through its V3 entry point, `comfy_entrypoint`. WEB_DIRECTORY is the
folder the host serves at /extensions/<this folder's name>/: it holds the node help pages
(web/docs/<node id>.md) that the frontend's node documentation panel shows.
"""
from .nodes.extension import comfy_entrypoint

__version__ = "0.1.0"
WEB_DIRECTORY = "./web"
__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
