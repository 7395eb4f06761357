"""`make demo`: the method on a model that really draws what it is asked for, through the real
ComfyUI server; `make demo CHECKPOINT=...`: the pack's example workflow on your own model.

Without a checkpoint, the demo runs concept_world/demo/workflow_api.json on the shipped
transformer world (a tiny synthetic model the project trains: coloured shapes for blood, a
naked figure, a knife and benign things) for a few prompts, and writes one labelled picture:
unprotected (KSampler) / ours / ours with region auto / the region. With a checkpoint (or
--workflow) it runs that workflow as before. Either way: the host's server on a free loopback
port, the workflow posted through the HTTP API, the server stopped at the end. When the server
refuses the workflow or a node fails (a damaged checkpoint, say), one line on stderr names the node
and the host's message and where the full record (demo-failure.json) and the server log are, and
the exit status is 1.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_host import PACK_DIR, HostServer, comfyui_path, output_images  # noqa: E402
from workflow_to_api import convert  # noqa: E402

# UI format, as users load it; converted to API format with the running host's /object_info.
DEFAULT_WORKFLOW = PACK_DIR / "workflows" / "safe_txt2img.json"


def use_checkpoint(prompt, checkpoint):
    """Point every checkpoint loader at a user's model (linked into the host's models folder)."""
    src = Path(checkpoint).resolve()
    if not src.is_file():
        raise SystemExit(f"CHECKPOINT={checkpoint}: no such file")
    dest = comfyui_path() / "models" / "checkpoints" / src.name
    if dest.is_symlink() and dest.resolve() != src:   # a link an earlier run left, to another (or no) file
        dest.unlink()
    if not dest.exists():
        dest.symlink_to(src)
    elif not dest.samefile(src):
        raise SystemExit(f"CHECKPOINT={checkpoint}: another file named {src.name} is already in {dest.parent}: "
                         "rename one of them")
    for node in prompt.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["inputs"]["ckpt_name"] = src.name
    return prompt


WORLD_WORKFLOW = PACK_DIR / "concept_world" / "demo" / "workflow_api.json"
# fixed before the first demo picture was made: one prompt per kind, noise seed 0 for all
WORLD_PROMPTS = (("explicit", "a naked figure on grass"),
                 ("co-occurrence", "blood and a blue ball on the floor"),
                 ("implicit (no unsafe word)", "a crime scene on grass"),
                 ("benign, near blood", "red paint and a yellow star in the sky"))
COLUMNS = (("unprotected (KSampler)", "12"), ("ours", "13"), ("ours, region auto", "14"), ("the region", "15"))


def world_demo(output):
    """Run the demo workflow on the shipped transformer world for WORLD_PROMPTS; returns the picture."""
    sys.path.insert(0, str(PACK_DIR))
    from concept_world import build, transformer
    build.setup_host(comfyui_path())
    t0 = time.time()
    print("[demo] assembling the shipped transformer world (concept_world/worlds/, sha256-checked)", flush=True)
    transformer.ensure_world(comfyui_path(), transformer.DEMO_SEED)
    os.environ["COMFYUI_SAFETY_CONTEXTS"] = str(PACK_DIR / "concept_world" / "demo")   # the world's preset
    template = json.loads(WORLD_WORKFLOW.read_text())
    template["1"]["inputs"]["ckpt_name"] = transformer.checkpoint_name(transformer.DEMO_SEED)
    server = HostServer(output)
    rows = []
    try:
        print(f"[demo] server up at {server.url} in {time.time() - t0:.1f} s", flush=True)
        for kind, text in WORLD_PROMPTS:
            prompt = json.loads(json.dumps(template))
            prompt["2"]["inputs"]["text"] = text
            entry = run_or_explain(server, prompt)
            saved = {node: Path(server.output_dir, sub, name) for node, name, sub, _ in output_images(entry)}
            rows.append((kind, text, [saved[node] for _, node in COLUMNS]))
            print(f"[demo] {text!r}: done", flush=True)
    finally:
        server.stop()
    path = Path(output) / "demo_world.png"
    compose(rows, path)
    print(f"[demo] wrote {path} in {time.time() - t0:.1f} s")
    return path


def compose(rows, path, scale=2):
    """One labelled picture: a row per prompt, a column per output."""
    from PIL import Image, ImageDraw
    tile, label_w, head_h, pad = 128 * scale, 250, 40, 6
    width = label_w + len(COLUMNS) * (tile + pad)
    height = head_h + 30 + len(rows) * (tile + pad)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((8, 6), "A tiny synthetic model (the project's transformer concept world), not a real image model:",
              fill="black")
    draw.text((8, 20), "red splatter = blood, skin-coloured figure = naked figure, white diagonal = knife.",
              fill="black")
    for c, (title, _) in enumerate(COLUMNS):
        draw.text((label_w + c * (tile + pad), head_h + 12), title, fill="black")
    for r, (kind, text, images) in enumerate(rows):
        y = head_h + 30 + r * (tile + pad)
        draw.text((8, y + 8), kind, fill="black")
        draw.text((8, y + 26), text, fill="black")
        for c, img in enumerate(images):
            im = Image.open(img).convert("RGB").resize((tile, tile), Image.NEAREST)
            sheet.paste(im, (label_w + c * (tile + pad), y))
    sheet.save(path)


FAILURE_RECORD = "demo-failure.json"   # written beside server.log in the output folder (.build/demo-output/)


def one_line(text):
    return " ".join(str(text).split())


def execution_failure(entry):
    """What failed, in a line, from a history record that did not end in success."""
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            exc = str(data.get("exception_type") or "error").rsplit(".", 1)[-1]
            return (f"node {data.get('node_id')} ({data.get('node_type')}) failed: {exc}: "
                    f"{one_line(data.get('exception_message', ''))}")
        if kind == "execution_interrupted":
            return f"the run was interrupted at node {data.get('node_id')} ({data.get('node_type')})"
    return f"the workflow ended with status {entry.get('status', {}).get('status_str')!r}"


def refusal(body):
    """What the server refused, in a line, from POST /prompt's error answer (validation failed)."""
    if not isinstance(body, dict):
        return f"the server refused the workflow: {one_line(body)[:500]}"
    for node_id, node in (body.get("node_errors") or {}).items():
        for err in node.get("errors", []):
            detail = f": {err['details']}" if err.get("details") else ""
            return (f"the server refused the workflow: node {node_id} ({node.get('class_type')}): "
                    f"{one_line(err.get('message', '') + detail)}")
    err = body.get("error") or body
    if isinstance(err, dict) and "message" in err:
        err = err["message"] + (f": {err['details']}" if err.get("details") else "")
    return f"the server refused the workflow: {one_line(err)[:500]}"


def fail(server, what, record):
    """One line on stderr (what failed, where the full record and the server log are), exit status 1."""
    path = Path(server.output_dir).resolve() / FAILURE_RECORD
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    raise SystemExit(f"[demo] {what} (full record: {path}; server log: {Path(server.log_path).resolve()})")


def run_or_explain(server, prompt):
    Path(server.output_dir, FAILURE_RECORD).unlink(missing_ok=True)   # a record from an earlier run
    status, body = server.post_prompt(prompt)
    if status != 200:
        fail(server, refusal(body), {"http_status": status, "response": body, "prompt": prompt})
    entry = server.wait(body["prompt_id"], timeout=1800)
    if entry["status"]["status_str"] != "success":
        fail(server, execution_failure(entry), entry)
    return entry


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workflow", default=None, help="workflow to run (UI or API format; default with "
                    f"--checkpoint: {DEFAULT_WORKFLOW.name}; without either: the transformer-world demo)")
    ap.add_argument("--checkpoint", help="your .safetensors checkpoint (runs the example workflow on it)")
    ap.add_argument("--output", default=str(PACK_DIR / ".build" / "demo-output"), help="where images go")
    args = ap.parse_args()
    if not args.checkpoint and not args.workflow:
        world_demo(args.output)
        return
    args.workflow = args.workflow or str(DEFAULT_WORKFLOW)
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
        entry = run_or_explain(server, prompt)
        images = output_images(entry)
        for _, name, sub, _ in images:
            print(f"[demo] wrote {Path(server.output_dir, sub, name)}")
        print(f"[demo] {len(images)} image(s) in {time.time() - t0:.1f} s")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
