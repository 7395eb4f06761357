"""Find and drive the real ComfyUI host: its folder, in-process, and its HTTP server.

Shared by the test suite, the demo, the concept world and the benchmarks. Nothing here
imitates the host: InProcessHost imports the host's own server, node registry and executor;
HostServer starts the host's own `main.py --cpu` on a free loopback port.
"""
import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parents[1]
PACK_LINK_NAME = "comfyui-safety-dual-latent"
TINY_CHECKPOINT = "tiny-sd15-random.safetensors"


def comfyui_path() -> Path:
    """The host folder the setup script prepared (or COMFYUI_PATH)."""
    env = os.environ.get("COMFYUI_PATH")
    if env:
        return Path(env).resolve()
    marker = Path(os.environ.get("BUILD_DIR", PACK_DIR / ".build")) / "comfyui_path"
    if not marker.exists():
        raise RuntimeError(f"{marker} is missing: run scripts/setup_host.sh (or `make test`) first")
    return Path(marker.read_text().strip())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HostServer:
    """The real ComfyUI server (`main.py --cpu`) on a free loopback port."""

    def __init__(self, output_dir, extra_args=(), root=None, python=None, startup_timeout=180):
        self.root = Path(root or comfyui_path())
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output_dir = Path(output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.output_dir / "server.log"
        self._log = open(self.log_path, "w")
        cmd = [python or sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1",
               "--port", str(self.port), "--output-directory", str(self.output_dir),
               "--disable-api-nodes", "--database-url", "sqlite:///:memory:", *extra_args]
        self.proc = subprocess.Popen(cmd, cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT)
        self.client_id = str(uuid.uuid4())
        deadline = time.time() + startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"server did not answer in {startup_timeout} s:\n{self.log()[-4000:]}")
                time.sleep(0.5)

    def log(self):
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def request(self, method, path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def get(self, path, timeout=30):
        status, body = self.request("GET", path, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"GET {path} -> {status}: {body}")
        return body

    def post_prompt(self, prompt):
        return self.request("POST", "/prompt", {"prompt": prompt, "client_id": self.client_id})

    def wait(self, prompt_id, timeout=300):
        """Poll /history until the prompt finished (success or error)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            hist = self.get(f"/history/{prompt_id}")
            if prompt_id in hist and hist[prompt_id].get("status", {}).get("completed") is not None:
                entry = hist[prompt_id]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            if self.proc.poll() is not None:
                raise RuntimeError(f"server died:\n{self.log()[-4000:]}")
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout} s")

    def run(self, prompt, timeout=300):
        status, body = self.post_prompt(prompt)
        if status != 200:
            raise AssertionError(f"POST /prompt -> {status}: {body}")
        return self.wait(body["prompt_id"], timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def output_images(history_entry):
    """(node_id, filename, subfolder, type) of every image a finished prompt saved."""
    found = []
    for node_id, out in history_entry.get("outputs", {}).items():
        for img in out.get("images", []):
            found.append((node_id, img["filename"], img.get("subfolder", ""), img.get("type")))
    return found


class InProcessHost:
    """The host's own modules, loaded once per test session, with our pack registered."""

    def __init__(self):
        root = comfyui_path()
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        from comfy.cli_args import args
        # The host asserts at import without CUDA otherwise; SAFETY_HOST_CPU=0 lets it use a GPU
        # (the benchmarks on a machine that has one).
        args.cpu = os.environ.get("SAFETY_HOST_CPU", "1") != "0"
        if args.front_end_root is None and importlib.util.find_spec("comfyui_frontend_package") is None:
            # nothing is served in-process: a bare GPU machine without the frontend package gets
            # an empty web root instead of the host exiting
            args.front_end_root = tempfile.mkdtemp(prefix="no-frontend-")
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


