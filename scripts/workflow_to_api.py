"""Convert a ComfyUI workflow from the UI format (what the frontend saves) to the API format
(what `POST /prompt` takes), using the host's `/object_info` for each node's input order.

UI format: `nodes` (id, type, mode, inputs with links, positional `widgets_values`) and
`links` as `[link_id, from_node, from_slot, to_node, to_slot, type]`.
API format: `{"<node id>": {"class_type": ..., "inputs": {name: value | [from_id, slot]},
"_meta": {"title": ...}}}`.

The positional `widgets_values` hold one entry per widget in the node definition's input
order, plus UI-only entries the API never sees: the "control after generate" value
("fixed", "randomize", ...) after each seed-like INT widget, and the upload button value
after an upload combo. Frontend-only nodes (Note, MarkdownNote, Reroute, PrimitiveNode)
are left out; muted nodes (mode 2) are dropped and bypassed ones (mode 4) pass their first
input of the matching type through, as the frontend does.

    python scripts/workflow_to_api.py workflows/safe_txt2img.json --server http://127.0.0.1:8188
    python scripts/workflow_to_api.py workflow.json --object-info object_info.json -o api.json
"""
import argparse
import json
import sys
import urllib.request

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
MODE_MUTED, MODE_BYPASSED = 2, 4
CONTROL = object()  # marks a UI-only "control after generate" slot
UPLOAD = object()  # marks a UI-only upload-button slot
KEEP_WIDGET = object()  # a link from a frontend Primitive node: the widget already holds its value


class ConversionError(ValueError):
    """The workflow cannot be converted (a missing node type, a widget count that does not fit)."""


def _ordered_inputs(info):
    """(name, spec) of a node definition's required then optional inputs, in the host's order."""
    order = info.get("input_order") or {}
    out = []
    for section in ("required", "optional"):
        specs = info.get("input", {}).get(section, {}) or {}
        names = order.get(section) or list(specs)
        out += [(name, specs[name]) for name in names if name in specs]
    return out


def _is_widget(spec):
    kind = spec[0]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if opts.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def widget_slots(info):
    """The names behind each position of `widgets_values`, UI-only slots marked CONTROL/UPLOAD."""
    slots, upload = [], False
    for name, spec in _ordered_inputs(info):
        if not _is_widget(spec):
            continue
        slots.append(name)
        kind = spec[0]
        opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        if kind == "INT" and (opts.get("control_after_generate") or
                              ("control_after_generate" not in opts and name in ("seed", "noise_seed"))):
            slots.append(CONTROL)
        elif (isinstance(kind, list) or kind == "COMBO") and opts.get("control_after_generate"):
            slots.append(CONTROL)
        upload = upload or bool(opts.get("image_upload") or opts.get("video_upload") or opts.get("audio_upload"))
    # The frontend adds the upload button after the node's other widgets (LoadImageMask:
    # image, channel, upload).
    return slots + [UPLOAD] if upload else slots


def _widget_values(node, info):
    """{input name: value} of a node's widgets, from its positional (or named) widgets_values."""
    values = node.get("widgets_values")
    slots = widget_slots(info)
    names = [s for s in slots if isinstance(s, str)]
    if values is None:
        values = []
    if isinstance(values, dict):  # some packs save widgets by name
        return {n: values[n] for n in names if n in values}
    if len(values) == len(slots):
        return {s: v for s, v in zip(slots, values) if isinstance(s, str)}
    if len(values) == len(names):  # saved without the UI-only entries
        return dict(zip(names, values))
    raise ConversionError(
        f"node {node.get('id')} ({node.get('type')}): {len(values)} widget values for the widgets "
        f"{[s if isinstance(s, str) else '<ui-only>' for s in slots]}")


def convert(workflow, object_info):
    """The API-format prompt of a UI-format workflow. Raises ConversionError with the node at fault."""
    if "nodes" not in workflow or "links" not in workflow:
        raise ConversionError("not a UI-format workflow (no 'nodes'/'links'): already API format?")
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {}
    for link in workflow["links"]:
        if isinstance(link, dict):  # version 1 schema: links as objects
            link = [link["id"], link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"],
                    link.get("type")]
        links[link[0]] = link

    missing = sorted({n["type"] for n in nodes.values()
                      if n["type"] not in object_info and n["type"] not in VIRTUAL_NODES
                      and n.get("mode", 0) != MODE_MUTED})
    if missing:
        raise ConversionError(f"node types missing from this host: {', '.join(missing)}")

    def source(link_id, seen=()):
        """(node id, slot) feeding a link, following Reroutes and bypassed nodes; None if nothing does;
        KEEP_WIDGET for a frontend Primitive node."""
        link = links.get(link_id)
        if link is None:
            return None
        from_id, from_slot, ltype = link[1], link[2], link[5]
        node = nodes.get(from_id)
        if node is None or from_id in seen:
            return None
        if node["type"] == "PrimitiveNode":  # the frontend copies its value into the target widget
            return KEEP_WIDGET
        if node["type"] == "Reroute":
            ins = node.get("inputs") or []
            return source(ins[0].get("link"), seen + (from_id,)) if ins else None
        mode = node.get("mode", 0)
        if mode == MODE_MUTED:
            return None
        if mode == MODE_BYPASSED:
            ins = node.get("inputs") or []
            out_type = (node.get("outputs") or [{}])[from_slot].get("type", ltype) if node.get("outputs") else ltype
            for pref in ([i for i, inp in enumerate(ins) if i == from_slot], range(len(ins))):
                for i in pref:
                    inp = ins[i]
                    if inp.get("link") is not None and inp.get("type") in (out_type, "*"):
                        return source(inp["link"], seen + (from_id,))
            return None
        return str(from_id), from_slot

    prompt = {}
    for node_id in sorted(nodes, key=lambda i: (nodes[i].get("order", 0), i)):
        node = nodes[node_id]
        ctype = node["type"]
        if ctype in VIRTUAL_NODES or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASSED):
            continue
        info = object_info[ctype]
        inputs = _widget_values(node, info)
        for inp in node.get("inputs") or []:
            if inp.get("link") is None:
                continue
            src = source(inp["link"])
            name = inp.get("widget", {}).get("name") or inp["name"]
            if src is KEEP_WIDGET:
                continue
            if src is None:
                inputs.pop(name, None)
                continue
            inputs[name] = [src[0], src[1]]
        title = node.get("title") or info.get("display_name") or ctype
        prompt[str(node_id)] = {"inputs": inputs, "class_type": ctype, "_meta": {"title": title}}
    return prompt


def fetch_object_info(server_url, timeout=120):
    with urllib.request.urlopen(server_url.rstrip("/") + "/object_info", timeout=timeout) as r:
        return json.loads(r.read())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workflow", help="UI-format workflow (.json)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--server", help="URL of a running ComfyUI server to read /object_info from")
    src.add_argument("--object-info", help="a saved /object_info JSON file")
    ap.add_argument("-o", "--output", help="write the API-format prompt here (default: stdout)")
    args = ap.parse_args(argv)
    with open(args.workflow) as f:
        workflow = json.load(f)
    if args.server:
        info = fetch_object_info(args.server)
    else:
        with open(args.object_info) as f:
            info = json.load(f)
    try:
        prompt = convert(workflow, info)
    except ConversionError as e:
        sys.exit(f"{args.workflow}: {e}")
    text = json.dumps(prompt, indent=1)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
