"""`make demo`'s failures in one line (scripts/demo.py through the real ComfyUI server it starts):
the node that failed, the host's own message, and where the full record and the server log are;
the full record in demo-failure.json beside the log; exit status 1."""
import json
import subprocess
import sys
import uuid

from harness import PACK_DIR, comfyui_path

DEMO = PACK_DIR / "scripts" / "demo.py"
WORKFLOW = PACK_DIR / "workflows" / "safe_txt2img.json"


def ui_node(kind):
    """The id and widget values of the example workflow's node of this type (UI format)."""
    node = next(n for n in json.loads(WORKFLOW.read_text())["nodes"] if n["type"] == kind)
    return str(node["id"]), node["widgets_values"]


def run_demo(*args):
    return subprocess.run([sys.executable, str(DEMO), *map(str, args)], capture_output=True, text=True, timeout=600)


def the_line(proc):
    """The demo's failure: exactly one line on stderr, no traceback or JSON anywhere."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stdout + proc.stderr and '"traceback"' not in proc.stdout + proc.stderr
    return lines[0]


def test_a_damaged_checkpoint_fails_in_one_line_naming_the_node_the_message_and_the_record(tmp_path):
    # A few garbage bytes as a checkpoint: the demo links it into the host's models/checkpoints, as
    # it does the user's file; safetensors reads the first 8 bytes as a header length past the end.
    ckpt = tmp_path / f"damaged-{uuid.uuid4().hex[:8]}.safetensors"
    ckpt.write_bytes(b"garbage!")
    link = comfyui_path() / "models" / "checkpoints" / ckpt.name
    out = tmp_path / "out"
    try:
        proc = run_demo("--checkpoint", ckpt, "--output", out)
    finally:
        if link.is_symlink():
            link.unlink()
    line = the_line(proc)
    loader, _ = ui_node("CheckpointLoaderSimple")
    record_path, log_path = (out / "demo-failure.json").resolve(), (out / "server.log").resolve()
    assert line.startswith(f"[demo] node {loader} (CheckpointLoaderSimple) failed: SafetensorError: "
                           "Error while deserializing header"), line
    assert line.endswith(f"(full record: {record_path}; server log: {log_path})"), line
    # the full record is the server's history entry, traceback and all
    record = json.loads(record_path.read_text())
    assert record["status"]["status_str"] == "error"
    (err,) = [data for kind, data in record["status"]["messages"] if kind == "execution_error"]
    assert err["node_id"] == loader and err["node_type"] == "CheckpointLoaderSimple"
    assert err["current_inputs"]["ckpt_name"] == [ckpt.name] and len(err["traceback"]) > 2
    assert " ".join(err["exception_message"].split()) in line     # the host's message, as it gave it
    assert "Exception during processing" in log_path.read_text()  # the server log has the host's side


def test_a_refused_workflow_fails_in_one_line_with_the_packs_message(tmp_path):
    # A saved workflow naming a preset that is not installed: the pack's validate_inputs refuses it.
    wf = json.loads(WORKFLOW.read_text())
    encoder, values = ui_node("SafetyContextEncode")
    for node in wf["nodes"]:
        if str(node["id"]) == encoder:
            node["widgets_values"] = [values[0], "no-such-preset", *values[2:]]
    path = tmp_path / "bad_preset.json"
    path.write_text(json.dumps(wf))
    out = tmp_path / "out"
    line = the_line(run_demo("--workflow", path, "--output", out))
    assert line.startswith(f"[demo] the server refused the workflow: node {encoder} (SafetyContextEncode): "
                           "Custom validation failed for node: preset - preset must be one of "), line
    assert line.endswith(f"got 'no-such-preset' (full record: {(out / 'demo-failure.json').resolve()}; "
                         f"server log: {(out / 'server.log').resolve()})"), line
    record = json.loads((out / "demo-failure.json").read_text())
    assert record["http_status"] == 400 and encoder in record["response"]["node_errors"]
    assert record["prompt"][encoder]["inputs"]["preset"] == "no-such-preset"
