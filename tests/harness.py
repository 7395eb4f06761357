"""Drive the real ComfyUI host from tests: in-process executor and the real HTTP server.

Nothing here imitates the host: the in-process side imports the host's own server,
node registry and executor; the HTTP side starts `main.py --cpu` (scripts/comfy_host.py).
"""
import asyncio
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from comfy_host import (PACK_DIR, PACK_LINK_NAME, TINY_CHECKPOINT, HostServer,  # noqa: E402,F401
                        comfyui_path, output_images)


class InProcessHost:
    """The host's own modules, loaded once per test session, with our pack registered."""

    def __init__(self):
        root = comfyui_path()
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        from comfy.cli_args import args
        args.cpu = True  # the host asserts at import without CUDA otherwise
        args.disable_api_nodes = True
        # Order matters: `nodes.py` would shadow the host's `utils` package.
        import utils.extra_config  # noqa: F401
        import server
        import nodes
        import execution
        import main  # for hijack_progress: the host's progress hook, which honours Cancel
        self.root = root
        self.nodes = nodes
        self.execution = execution
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.server = server.PromptServer(self.loop)
        self.import_failures = []
        self.loop.run_until_complete(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        main.hijack_progress(self.server)
        self.server.last_prompt_id = None  # set by the host's prompt worker, which tests do not run
        self.server.last_node_id = None
        self.executor = execution.PromptExecutor(self.server, cache_type=execution.CacheType.CLASSIC,
                                                 cache_args={"lru": 0, "ram": 0})
        self.pack_module = next((m for name, m in sys.modules.items()
                                 if name.endswith("custom_nodes/" + PACK_LINK_NAME)), None)

    # -- graphs -----------------------------------------------------------------
    def validate(self, prompt):
        return self.loop.run_until_complete(self.execution.validate_prompt(str(uuid.uuid4()), prompt, None))

    def run(self, prompt):
        """Validate and execute an API-format prompt; returns the executor (outputs, history)."""
        valid = self.validate(prompt)
        if not valid[0]:
            raise AssertionError(f"prompt failed validation: {valid[1]} {valid[3]}")
        self.executor.execute(prompt, str(uuid.uuid4()), {"client_id": None}, valid[2])
        return self.executor

    # -- direct node calls (for bit-exact comparisons) -----------------------------
    def node(self, class_type):
        return self.nodes.NODE_CLASS_MAPPINGS[class_type]

    def call(self, class_type, **inputs):
        """Run one node the way the executor does, returning its output tuple."""
        cls = self.node(class_type)
        if hasattr(cls, "define_schema"):  # V3 node
            out = cls.execute(**inputs)
            return tuple(out.args) if hasattr(out, "args") else tuple(out)
        obj = cls()
        return getattr(obj, cls.FUNCTION)(**inputs)

    def load_checkpoint(self, name=TINY_CHECKPOINT):
        return self.call("CheckpointLoaderSimple", ckpt_name=name)

    def encode(self, clip, text):
        return self.call("CLIPTextEncode", clip=clip, text=text)[0]

    def empty_latent(self, width=64, height=64, batch_size=1):
        return self.call("EmptyLatentImage", width=width, height=height, batch_size=batch_size)[0]


