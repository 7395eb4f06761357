"""The example workflows (workflows/*.json, UI format): well formed, served by the host as
templates, converted to API format by scripts/workflow_to_api.py, and run on the real server."""
import copy
import json

import pytest
from PIL import Image

from build_family_checkpoints import FAMILIES, file_name
from harness import TINY_CHECKPOINT
from workflow_files import (EXPECTED, SUBSTITUTED, WORKFLOW_DIR, convert, load_workflow, widget_names,
                            with_stand_in, workflow_names)
from workflow_to_api import ConversionError

PACK_NAME = "comfyui-safety-dual-latent"
REQUIRED = ["safe_txt2img", "safe_txt2img_custom_sampler", "manual_dual_branches", "weight_sweep",
            "safe_region_txt2img", "safe_region_mask_txt2img", "two_stage_safe", "sdxl_safe_txt2img",
            "flux_safe_txt2img", "wan_safe_txt2video", "content_aware_txt2img"]
TINY_FAMILY_MODELS = {file_name(f) for f in FAMILIES}
EMPTY_LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyHunyuanLatentVideo")


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info", timeout=120)


def test_the_issue_workflows_are_shipped():
    assert set(REQUIRED) <= set(workflow_names())


@pytest.mark.parametrize("name", workflow_names())
def test_workflow_file_is_ui_format(name):
    wf = load_workflow(name)
    assert wf["version"] == 0.4 and isinstance(wf["nodes"], list) and isinstance(wf["links"], list)
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert wf["last_node_id"] == max(nodes) and wf["last_link_id"] == max(link[0] for link in wf["links"])
    # opens with a note that says what it shows
    first = min(wf["nodes"], key=lambda n: (n["pos"][1], n["pos"][0]))
    assert first["type"] == "Note" and len(first["widgets_values"][0]) > 80
    types = {n["type"] for n in wf["nodes"]}
    assert EXPECTED[name] <= types, EXPECTED[name] - types
    # runs on a fresh set-up: the tiny checkpoint (or a tiny family model) by name, small images
    loaders = [n for n in wf["nodes"] if n["type"] in ("CheckpointLoaderSimple", "UNETLoader")]
    assert loaders and all(n["widgets_values"][0] in {TINY_CHECKPOINT} | TINY_FAMILY_MODELS for n in loaders)
    for n in wf["nodes"]:
        if n["type"] in EMPTY_LATENTS:
            assert n["widgets_values"][:2] == [64, 64]
    # every link agrees with both of its ends
    for link_id, src, src_slot, dst, dst_slot, ltype in wf["links"]:
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert link_id in out["links"] and inp["link"] == link_id
        assert out["type"] == ltype == (inp["type"] if inp["type"] != "COMBO" else ltype)
    # UI-only values are saved as the frontend saves them: seeds fixed, so examples repeat exactly
    for n in wf["nodes"]:
        for w in n.get("widgets_values") or []:
            if w in ("randomize", "increment", "decrement"):
                pytest.fail(f"node {n['id']} ({n['type']}) re-seeds on every run: {w}")


@pytest.mark.parametrize("name", workflow_names())
def test_workflow_widgets_match_the_host(object_info, name):
    """Positional widget values line up with the host's current node definitions. The one
    exception: the T5-XXL / umT5-XXL file names of the loader the tests substitute (no tiny
    file exists for them; see workflow_files.SUBSTITUTED)."""
    absent_ok = SUBSTITUTED.get(name, (None, set()))
    for n in load_workflow(name)["nodes"]:
        if n["type"] == "Note":
            continue
        assert n["type"] in object_info, f"{n['type']} is not registered on this host"
        names = widget_names(object_info, n["type"])
        assert len(n["widgets_values"]) == len(names), (n["type"], names)
        spec = {**object_info[n["type"]]["input"].get("required", {}),
                **object_info[n["type"]]["input"].get("optional", {})}
        for wname, value in zip(names, n["widgets_values"]):
            if wname == "control_after_generate":
                assert value in ("fixed", "increment", "decrement", "randomize")
                continue
            if wname == "upload":  # the frontend's upload button (LoadImageMask)
                assert value == "image"
                continue
            kind = spec[wname][0]
            opts = spec[wname][1] if len(spec[wname]) > 1 else {}
            choices = kind if isinstance(kind, list) else opts.get("options")
            if choices is not None:
                if n["type"] == absent_ok[0] and value in absent_ok[1]:
                    continue  # present only where the user has the real T5 file
                assert value in choices, (n["type"], wname, value)
            elif kind in ("INT", "FLOAT"):
                assert opts.get("min", value) <= value <= opts.get("max", value), (n["type"], wname, value)


def test_host_serves_the_workflows_as_templates(server):
    """The host lists workflows/ under the pack's name in its template browser."""
    templates = server.get("/api/workflow_templates")
    assert PACK_NAME in templates, sorted(templates)
    assert set(workflow_names()) <= set(templates[PACK_NAME])
    status, body = server.request("GET", f"/api/workflow_templates/{PACK_NAME}/safe_txt2img.json")
    assert status == 200 and body == load_workflow("safe_txt2img")


@pytest.mark.parametrize("name", workflow_names())
def test_workflow_runs_on_the_real_server(server, object_info, name):
    wf = load_workflow(name)
    prompt = convert(wf, object_info)
    # the API prompt has every executable node and none of the UI-only ones
    assert set(prompt) == {str(n["id"]) for n in wf["nodes"] if n["type"] != "Note"}
    entry = server.run(with_stand_in(name, prompt), timeout=600)
    assert entry["status"]["status_str"] == "success", json.dumps(entry["status"])[-2000:]
    saves = {str(n["id"]) for n in wf["nodes"] if n["type"] == "SaveImage"}
    assert saves <= set(entry["outputs"]), "a SaveImage node saved nothing"
    sizes = {}
    for node_id in saves:
        for img in entry["outputs"][node_id]["images"]:
            path = server.output_dir / img["subfolder"] / img["filename"]
            with Image.open(path) as im:
                assert im.format == "PNG"
                sizes.setdefault(node_id, []).append(im.size)
    if name == "safe_txt2img":  # the user and safe branches side by side
        assert sorted(map(tuple, sizes.values())) == [((64, 64),), ((128, 64),)]
    if name.startswith("safe_region"):  # the result beside the region where safety acted
        [[size]] = sizes.values()
        assert size == (128, 64)
        [img] = entry["outputs"][next(iter(saves))]["images"]
        with Image.open(server.output_dir / img["subfolder"] / img["filename"]) as im:
            region = im.convert("L").crop((64, 0, 128, 64))
            lo, hi = region.getextrema()
        ks = next(n for n in wf["nodes"] if n["type"] == "DualLatentKSampler")
        assert ks["widgets_values"][-2] == ("mask" if "mask" in name else "auto")
        if "mask" in name:  # the loaded ellipse, fitted to the latent: part of the image
            assert (lo, hi) == (0, 255)
    if name == "wan_safe_txt2video":  # an mp4 of the 5 frames the 2 latent frames decode to
        [video] = entry["outputs"][next(str(n["id"]) for n in wf["nodes"] if n["type"] == "SaveVideo")]["images"]
        assert video["filename"].endswith(".mp4")
        import av
        with av.open(str(server.output_dir / video["subfolder"] / video["filename"])) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 5 and frames[0].shape == (64, 64, 3)
    if name == "weight_sweep":  # one image per safety_weight
        n_samplers = sum(1 for n in wf["nodes"] if n["type"] == "DualLatentKSampler")
        assert [len(v) for v in sizes.values()] == [n_samplers] and n_samplers >= 5


# -- the converter on its own ------------------------------------------------------------

def test_converter_drops_ui_only_values_and_follows_links(object_info):
    wf = load_workflow("safe_txt2img")
    prompt = convert(wf, object_info)
    ks = next(v for v in prompt.values() if v["class_type"] == "DualLatentKSampler")
    assert "control_after_generate" not in ks["inputs"]
    assert ks["inputs"]["seed"] == 42 and ks["inputs"]["sampler_name"] == "euler"
    src = ks["inputs"]["safe_positive"]
    assert prompt[src[0]]["class_type"] == "SafetyContextEncode" and src[1] == 1
    assert not any(v["class_type"] == "Note" for v in prompt.values())


def test_converter_linked_widget_becomes_a_link(object_info):
    """A widget fed by a link (safety_weight from another node) is sent as the link, not the value."""
    wf = copy.deepcopy(load_workflow("safe_txt2img"))
    ks = next(n for n in wf["nodes"] if n["type"] == "DualLatentKSampler")
    wf["nodes"].append({"id": 99, "type": "PrimitiveFloat", "pos": [0, 0], "size": [200, 60], "mode": 0,
                        "inputs": [], "outputs": [{"name": "FLOAT", "type": "FLOAT", "links": [999]}],
                        "widgets_values": [0.25], "properties": {}})
    inp = next(i for i in ks["inputs"] if i["name"] == "safety_weight")
    assert inp["widget"] == {"name": "safety_weight"}
    inp["link"] = 999
    wf["links"].append([999, 99, 0, ks["id"], ks["inputs"].index(inp), "FLOAT"])
    prompt = convert(wf, object_info)
    assert prompt[str(ks["id"])]["inputs"]["safety_weight"] == ["99", 0]
    assert prompt["99"]["inputs"] == {"value": 0.25}


def test_converter_frontend_primitive_and_reroute(object_info):
    """The frontend's own Primitive node (not a host node) copies its value into the widget it
    feeds; a Reroute is followed to the real source."""
    wf = copy.deepcopy(load_workflow("safe_txt2img"))
    ks = next(n for n in wf["nodes"] if n["type"] == "DualLatentKSampler")
    inp = next(i for i in ks["inputs"] if i["name"] == "steps")
    wf["nodes"].append({"id": 98, "type": "PrimitiveNode", "pos": [0, 0], "size": [200, 80], "mode": 0,
                        "inputs": [], "outputs": [{"name": "INT", "type": "INT", "links": [998],
                                                   "widget": {"name": "steps"}}],
                        "widgets_values": [4, "fixed"], "properties": {"Run widget replace on values": False}})
    inp["link"] = 998
    wf["links"].append([998, 98, 0, ks["id"], ks["inputs"].index(inp), "INT"])
    # a Reroute between the checkpoint's MODEL and the sampler
    model_in = next(i for i in ks["inputs"] if i["name"] == "model")
    old = next(link for link in wf["links"] if link[0] == model_in["link"])
    wf["nodes"].append({"id": 97, "type": "Reroute", "pos": [0, 0], "size": [75, 26], "mode": 0,
                        "inputs": [{"name": "", "type": "*", "link": old[0]}],
                        "outputs": [{"name": "", "type": "MODEL", "links": [997]}], "properties": {}})
    old[3], old[4] = 97, 0
    wf["links"].append([997, 97, 0, ks["id"], ks["inputs"].index(model_in), "MODEL"])
    model_in["link"] = 997
    prompt = convert(wf, object_info)
    assert "98" not in prompt and "97" not in prompt
    assert prompt[str(ks["id"])]["inputs"]["steps"] == ks["widgets_values"][2]
    assert prompt[str(ks["id"])]["inputs"]["model"] == [str(old[1]), 0]


def test_converter_muted_and_bypassed_nodes(object_info):
    wf = copy.deepcopy(load_workflow("manual_dual_branches"))
    merge = next(n for n in wf["nodes"] if n["type"] == "LatentWeightedMerge")
    merge["mode"] = 4  # bypassed: its first LATENT input passes through
    prompt = convert(wf, object_info)
    assert str(merge["id"]) not in prompt
    decode = next(v for v in prompt.values() if v["class_type"] == "VAEDecode")
    user_branch = next(n for n in wf["nodes"] if n.get("title") == "User branch")
    assert decode["inputs"]["samples"] == [str(user_branch["id"]), 0]
    merge["mode"] = 2  # muted: gone, and so is the input it fed
    prompt = convert(wf, object_info)
    decode = next(v for v in prompt.values() if v["class_type"] == "VAEDecode")
    assert "samples" not in decode["inputs"]


def test_converter_reports_what_it_cannot_convert(object_info):
    wf = copy.deepcopy(load_workflow("safe_txt2img"))
    with pytest.raises(ConversionError, match="not a UI-format"):
        convert({"1": {"class_type": "KSampler", "inputs": {}}}, object_info)
    ks = next(n for n in wf["nodes"] if n["type"] == "DualLatentKSampler")
    ks["widgets_values"] = ks["widgets_values"][:3]
    with pytest.raises(ConversionError, match=r"DualLatentKSampler.*3 widget values"):
        convert(wf, object_info)
    ks["type"] = "NoSuchNode"
    with pytest.raises(ConversionError, match="NoSuchNode"):
        convert(wf, object_info)


def test_converter_cli(tmp_path, object_info):
    import subprocess
    import sys
    info = tmp_path / "object_info.json"
    info.write_text(json.dumps(object_info))
    out = tmp_path / "api.json"
    script = WORKFLOW_DIR.parent / "scripts" / "workflow_to_api.py"
    subprocess.run([sys.executable, str(script), str(WORKFLOW_DIR / "weight_sweep.json"), "--object-info",
                    str(info), "-o", str(out)], check=True)
    assert json.loads(out.read_text()) == convert(load_workflow("weight_sweep"), object_info)
