"""`make demo`: run the pack's example workflow on the real ComfyUI server.

Starts the host's server on a free loopback port, posts the workflow through the HTTP
API, waits for it, prints where the images went and stops the server.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_host import PACK_DIR, TINY_CHECKPOINT, HostServer, comfyui_path, output_images  # noqa: E402
from workflow_to_api import convert  # noqa: E402

# UI format, as users load it; converted to API format with the running host's /object_info.
DEFAULT_WORKFLOW = PACK_DIR / "workflows" / "safe_txt2img.json"


def use_checkpoint(prompt, checkpoint):
    """Point every checkpoint loader at a user's model (linked into the host's models folder)."""
    src = Path(checkpoint).resolve()
    if not src.is_file():
        raise SystemExit(f"CHECKPOINT={checkpoint}: no such file")
    dest = comfyui_path() / "models" / "checkpoints" / src.name
    if not dest.exists():
        dest.symlink_to(src)
    for node in prompt.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["inputs"]["ckpt_name"] = src.name
    return prompt


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workflow", default=str(DEFAULT_WORKFLOW), help="workflow to run (UI or API format)")
    ap.add_argument("--checkpoint", help=f"a .safetensors checkpoint instead of {TINY_CHECKPOINT}")
    ap.add_argument("--output", default=str(PACK_DIR / ".build" / "demo-output"), help="where images go")
    args = ap.parse_args()
    prompt = json.loads(Path(args.workflow).read_text())
    t0 = time.time()
    print(f"[demo] starting the ComfyUI server (host: {comfyui_path()})", flush=True)
    server = HostServer(args.output)
    try:
        if "nodes" in prompt:  # UI format: the host's node definitions give the widget order
            prompt = convert(prompt, server.get("/object_info", timeout=120))
        if args.checkpoint:
            prompt = use_checkpoint(prompt, args.checkpoint)
        print(f"[demo] server up at {server.url} in {time.time() - t0:.1f} s; running {Path(args.workflow).name}", flush=True)
        entry = server.run(prompt, timeout=1800)
        if entry["status"]["status_str"] != "success":
            print(json.dumps(entry["status"], indent=1)[-3000:], file=sys.stderr)
            raise SystemExit("[demo] the workflow failed (server log: %s)" % server.log_path)
        images = output_images(entry)
        for _, name, sub, _ in images:
            print(f"[demo] wrote {Path(server.output_dir, sub, name)}")
        print(f"[demo] {len(images)} image(s) in {time.time() - t0:.1f} s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
