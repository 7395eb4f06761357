"""Write the example workflows in workflows/*.json (UI format, as the frontend saves them).

Each graph is described below in a few lines; node inputs, outputs and the positional
`widgets_values` (with the UI-only "control after generate" entry after seeds) are laid out
from the host's own /object_info, so the files match what the frontend itself would save.
The browser test loads every file in the real frontend and checks that the frontend reads
back the same widget values and links.

    .build/venv/bin/python scripts/build_workflows.py                 # starts the host to read /object_info
    .build/venv/bin/python scripts/build_workflows.py --object-info object_info.json
"""
import argparse
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_host import PACK_DIR, TINY_CHECKPOINT  # noqa: E402
from workflow_to_api import _is_widget, _ordered_inputs, widget_slots, CONTROL, UPLOAD  # noqa: E402

WORKFLOW_DIR = PACK_DIR / "workflows"
NEGATIVE = "blurry, low quality, watermark"
PROMPT = "a painting of a nude woman reading a book in a sunlit garden"
SEED = 42
STEPS = 4
SIZE = 64


class Out:
    """An output slot of a node being built: (node, slot index)."""

    def __init__(self, node, slot):
        self.node, self.slot = node, slot


class Graph:
    def __init__(self, object_info, name):
        self.info = object_info
        self.name = name
        self.nodes = []
        self.links = []
        self.groups = []
        self.top = 230  # below the note

    def note(self, text, pos, size=(420, 160)):
        node = {"id": len(self.nodes) + 1, "type": "Note", "pos": list(pos), "size": list(size), "flags": {},
                "order": 0, "mode": 0, "inputs": [], "outputs": [], "properties": {}, "widgets_values": [text],
                "color": "#432", "bgcolor": "#653"}
        self.nodes.append(node)
        return node

    def add(self, ctype, pos, title=None, control="fixed", node_width=None, **values):
        """A node of type `ctype`; values are widget values or Out links (links into widgets too)."""
        info = self.info[ctype]
        node_id = len(self.nodes) + 1
        conn_inputs, widget_inputs = [], []
        optional = set((info.get("input", {}).get("optional") or {}))
        for name, spec in _ordered_inputs(info):
            entry = {"localized_name": name, "name": name, "type": spec[0] if isinstance(spec[0], str) else "COMBO"}
            if name in optional:
                entry["shape"] = 7
            if _is_widget(spec):
                entry["widget"] = {"name": name}
                widget_inputs.append(entry)
            else:
                conn_inputs.append(entry)
            entry["link"] = None
        inputs = conn_inputs + widget_inputs
        unknown = set(values) - {i["name"] for i in inputs}
        if unknown:
            raise KeyError(f"{ctype} has no input {sorted(unknown)}")

        widgets_values = []
        specs = dict(_ordered_inputs(info))
        for slot in widget_slots(info):
            if slot is CONTROL:
                widgets_values.append(control)
            elif slot is UPLOAD:
                widgets_values.append("image")
            else:
                v = values.get(slot)
                if v is None or isinstance(v, Out):  # a linked widget keeps its (unused) value
                    spec = specs[slot]
                    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                    v = opts.get("default")
                    if v is None:
                        choices = spec[0] if isinstance(spec[0], list) else opts.get("options", [""])
                        v = choices[0] if spec[0] == "COMBO" or isinstance(spec[0], list) else ""
                widgets_values.append(v)

        outputs = [{"localized_name": n, "name": n, "type": t, "links": []}
                   for n, t in zip(info["output_name"], info["output"])]
        n_widgets = sum(1 for s in widget_slots(info) if s is not UPLOAD)
        multiline = sum(1 for name, spec in _ordered_inputs(info)
                        if spec[0] == "STRING" and len(spec) > 1 and spec[1].get("multiline"))
        height = 30 + 22 * max(len(conn_inputs), len(outputs)) + 26 * n_widgets + 70 * multiline
        if ctype in ("SaveImage", "PreviewImage"):
            height = max(height, 300)  # room for the image preview the frontend shows after a run
        size = [node_width or (400 if multiline else 315), height]
        pos = self.place(pos, size)
        node = {"id": node_id, "type": ctype, "pos": list(pos),
                "size": size, "flags": {}, "order": 0, "mode": 0,
                "inputs": inputs, "outputs": outputs, "properties": {"Node name for S&R": ctype},
                "widgets_values": widgets_values}
        if title:
            node["title"] = title
        self.nodes.append(node)
        for name, v in values.items():
            if isinstance(v, Out):
                self.link(v, node, name)
        return node

    def place(self, pos, size, gap=40):
        """pos as given, or (x, None): stacked below the nodes already placed in column x."""
        x, y = pos
        if y is None:
            y = max([self.top] + [n["pos"][1] + n["size"][1] + gap for n in self.nodes if n["pos"][0] == x])
        return [x, y]

    def link(self, src, dst, input_name):
        link_id = len(self.links) + 1
        out = src.node["outputs"][src.slot]
        inp = next(i for i in dst["inputs"] if i["name"] == input_name)
        self.links.append([link_id, src.node["id"], src.slot, dst["id"], dst["inputs"].index(inp), out["type"]])
        out["links"].append(link_id)
        inp["link"] = link_id

    def group(self, title, bounding, color="#3f789e"):
        self.groups.append({"id": len(self.groups) + 1, "title": title, "bounding": list(bounding),
                            "color": color, "font_size": 24, "flags": {}})

    def to_json(self):
        # execution order as the frontend stores it: a topological order of the links
        deps = {n["id"]: {l[1] for l in self.links if l[3] == n["id"]} for n in self.nodes}
        order, done = [], set()
        while len(order) < len(self.nodes):
            ready = [i for i in sorted(deps) if i not in done and deps[i] <= done]
            order += ready
            done |= set(ready)
        for n in self.nodes:
            n["order"] = order.index(n["id"])
            for o in n["outputs"]:
                if not o["links"]:
                    o["links"] = None
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "comfyui-safety-dual-latent/" + self.name)),
                "revision": 0, "last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": self.nodes, "links": self.links, "groups": self.groups, "config": {},
                "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}}, "version": 0.4}


C0, C1, C2, C3, C4, C5, C6 = 20, 370, 820, 1180, 1530, 1880, 2230  # column x positions


def out(node, slot=0):
    return Out(node, slot)


def common(g, y0=0, prompt=PROMPT, preset="sexual"):
    """Checkpoint, prompt + safety context, negative and empty latent: the usual left column."""
    ck = g.add("CheckpointLoaderSimple", (C0, None), ckpt_name=TINY_CHECKPOINT)
    enc = g.add("SafetyContextEncode", (C1, None), clip=out(ck, 1), text=prompt, preset=preset,
                mode="append", extra_context="")
    neg = g.add("CLIPTextEncode", (C1, None), title="Negative", clip=out(ck, 1), text=NEGATIVE)
    lat = g.add("EmptyLatentImage", (C0, None), width=SIZE, height=SIZE, batch_size=1)
    return ck, enc, neg, lat


def sampler_values(**over):
    v = dict(seed=SEED, steps=STEPS, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=1.0,
             safety_weight=0.6, context_threshold=0.25, merge="at_end")
    v.update(over)
    return v


def dual_sampler(g, ck, enc, neg, lat, **values):
    """DualLatentKSampler wired to the usual left column, with sampler_values(**values)."""
    return g.add("DualLatentKSampler", (C2, None), model=out(ck, 0), positive=out(enc, 0), negative=out(neg, 0),
                 safe_positive=out(enc, 1), latent_image=out(lat, 0), **sampler_values(**values))


def safe_txt2img(info):
    g = Graph(info, "safe_txt2img")
    g.note("Safe txt2img (Safety Dual Latent).\n\nSafetyContextEncode encodes your prompt and, with the "
           "'sexual' preset, a safety context. DualLatentKSampler runs both from the same noise: the first "
           "context_threshold share of the steps follow your prompt alone (layout), then the safety stream "
           "is mixed in with safety_weight. merge=at_end also returns both branches: they are saved side by "
           "side (left: your prompt as plain KSampler gives it; right: the safety stream).", (20, 0), (700, 170))
    ck, enc, neg, lat = common(g)
    ks = dual_sampler(g, ck, enc, neg, lat)
    dec = g.add("VAEDecode", (C3, None), title="Decode result", samples=out(ks, 0), vae=out(ck, 2))
    dec_u = g.add("VAEDecode", (C3, None), title="Decode user branch", samples=out(ks, 1), vae=out(ck, 2))
    dec_s = g.add("VAEDecode", (C3, None), title="Decode safe branch", samples=out(ks, 2), vae=out(ck, 2))
    side = g.add("ImageStitch", (C4, None), title="User | safe, side by side", image1=out(dec_u, 0),
                 image2=out(dec_s, 0), direction="right", match_image_size=True, spacing_width=0,
                 spacing_color="white")
    g.add("SaveImage", (C5, None), title="Save result", images=out(dec, 0), filename_prefix="safety/safe_txt2img")
    g.add("SaveImage", (C5, None), title="Save user | safe", images=out(side, 0),
          filename_prefix="safety/safe_txt2img_user_vs_safe")
    return g


def safe_txt2img_custom_sampler(info):
    g = Graph(info, "safe_txt2img_custom_sampler")
    g.note("Safety Dual Guider with SamplerCustomAdvanced.\n\nThe guider mixes your prompt and the safety "
           "context at every step after the threshold, with the negative shared: one batched model call per "
           "step. Use it with any noise, sampler and sigmas node of the host (here RandomNoise, "
           "KSamplerSelect and BasicScheduler).", (20, 0), (700, 150))
    ck, enc, neg, lat = common(g)
    guider = g.add("SafetyDualGuider", (C2, None), model=out(ck, 0), positive=out(enc, 0), negative=out(neg, 0),
                   safe_positive=out(enc, 1), cfg=7.0, safety_weight=0.6, context_threshold=0.25)
    noise = g.add("RandomNoise", (C2, None), noise_seed=SEED)
    sampler = g.add("KSamplerSelect", (C2, None), sampler_name="euler")
    sigmas = g.add("BasicScheduler", (C2, None), model=out(ck, 0), scheduler="normal", steps=STEPS, denoise=1.0)
    sca = g.add("SamplerCustomAdvanced", (C3, None), noise=out(noise, 0), guider=out(guider, 0),
                sampler=out(sampler, 0), sigmas=out(sigmas, 0), latent_image=out(lat, 0))
    dec = g.add("VAEDecode", (C4, None), samples=out(sca, 0), vae=out(ck, 2))
    g.add("SaveImage", (C5, None), images=out(dec, 0), filename_prefix="safety/custom_sampler")
    return g


def manual_dual_branches(info):
    k = 1
    g = Graph(info, "manual_dual_branches")
    g.note(f"The method from plain host nodes and one of ours.\n\nThe first KSamplerAdvanced runs steps 0..{k} "
           "on your prompt and returns the latent with its leftover noise (the shared layout). Two "
           f"KSamplerAdvanced continue from step {k} without adding noise: one with your prompt, one with the "
           "safety context. LatentWeightedMerge mixes them: weight 0 is your image, 1 the safe branch. This "
           "is DualLatentKSampler's merge=at_end, wired by hand.", (20, 0), (700, 170))
    ck, enc, neg, lat = common(g)
    common_kw = dict(noise_seed=SEED, steps=STEPS, cfg=7.0, sampler_name="euler", scheduler="normal")
    first = g.add("KSamplerAdvanced", (C2, None), title=f"Shared steps 0..{k}", model=out(ck, 0), add_noise="enable",
                  positive=out(enc, 0), negative=out(neg, 0), latent_image=out(lat, 0), start_at_step=0,
                  end_at_step=k, return_with_leftover_noise="enable", **common_kw)
    user = g.add("KSamplerAdvanced", (C3, None), title="User branch", model=out(ck, 0), add_noise="disable",
                 positive=out(enc, 0), negative=out(neg, 0), latent_image=out(first, 0), start_at_step=k,
                 end_at_step=10000, return_with_leftover_noise="disable", **common_kw)
    safe = g.add("KSamplerAdvanced", (C3, None), title="Safe branch", model=out(ck, 0), add_noise="disable",
                 positive=out(enc, 1), negative=out(neg, 0), latent_image=out(first, 0), start_at_step=k,
                 end_at_step=10000, return_with_leftover_noise="disable", **common_kw)
    merge = g.add("LatentWeightedMerge", (C4, None), latent_a=out(user, 0), latent_b=out(safe, 0), weight=0.6)
    dec = g.add("VAEDecode", (C5, None), samples=out(merge, 0), vae=out(ck, 2))
    g.add("SaveImage", (C6, None), images=out(dec, 0), filename_prefix="safety/manual_dual_branches")
    return g


def weight_sweep(info, weights=(0.0, 0.25, 0.5, 0.75, 1.0)):
    g = Graph(info, "weight_sweep")
    g.note("safety_weight sweep: the same seed and prompt at safety_weight "
           + ", ".join(f"{w:g}" for w in weights) + ", saved as one batch (left to right). 0 is exactly the "
           "plain KSampler image; higher values follow the safety context more. Pick the lowest weight that "
           "removes what you do not want.", (20, 0), (700, 130))
    ck, enc, neg, lat = common(g)
    samplers = []
    for i, w in enumerate(weights):
        samplers.append(g.add("DualLatentKSampler", ((C2, C3)[i % 2], None), title=f"safety_weight {w:g}",
                              model=out(ck, 0), positive=out(enc, 0), negative=out(neg, 0),
                              safe_positive=out(enc, 1), latent_image=out(lat, 0),
                              **sampler_values(safety_weight=w, merge="every_step")))
    batch = samplers[0]
    for i, s in enumerate(samplers[1:]):
        batch = g.add("LatentBatch", (C4, None), samples1=out(batch, 0), samples2=out(s, 0))
    dec = g.add("VAEDecode", (C5, None), samples=out(batch, 0), vae=out(ck, 2))
    g.add("SaveImage", (C6, None), images=out(dec, 0), filename_prefix="safety/weight_sweep")
    return g


def gated_txt2img(info):
    g = Graph(info, "gated_txt2img")
    g.note("Gated safety: SafetyPromptGate scores your prompt with its detector (`all`: the preset's unsafe "
           "terms, a learned classifier on the preset's category, and similarity in the model's text "
           "encoder). Below its threshold it outputs safety_weight 0, so a "
           "benign prompt gives exactly the plain KSampler image; above it, the weight you set on the gate. "
           "One prompt node feeds both the encoder and the gate; the gate's safety_weight output drives the "
           "sampler's safety_weight input.", (20, 0), (760, 150))
    ck = g.add("CheckpointLoaderSimple", (C0, None), ckpt_name=TINY_CHECKPOINT)
    lat = g.add("EmptyLatentImage", (C0, None), width=SIZE, height=SIZE, batch_size=1)
    prompt = g.add("PrimitiveStringMultiline", (C0, None), title="Prompt", node_width=315, value=PROMPT)
    enc = g.add("SafetyContextEncode", (C1, None), clip=out(ck, 1), text=out(prompt, 0), preset="sexual",
                mode="append", extra_context="")
    gate = g.add("SafetyPromptGate", (C1, None), clip=out(ck, 1), text=out(prompt, 0), preset="sexual",
                 threshold=0.5, safety_weight=0.6, detector="all")
    neg = g.add("CLIPTextEncode", (C1, None), title="Negative", clip=out(ck, 1), text=NEGATIVE)
    ks = g.add("DualLatentKSampler", (C2, None), model=out(ck, 0), positive=out(enc, 0), negative=out(neg, 0),
               safe_positive=out(enc, 1), latent_image=out(lat, 0), **sampler_values(safety_weight=out(gate, 0)))
    dec = g.add("VAEDecode", (C3, None), samples=out(ks, 0), vae=out(ck, 2))
    g.add("SaveImage", (C4, None), images=out(dec, 0), filename_prefix="safety/gated_txt2img")
    return g


def two_stage_safe(info, split=2):
    g = Graph(info, "two_stage_safe")
    g.note("Two-stage safe sampling (base + refiner, or Wan 2.2's high/low-noise experts).\n\n"
           "Two KSampler Advanced (Safety Dual Latent) nodes split one schedule of "
           f"{STEPS} steps at step {split}: the first returns its latent with leftover noise, the second continues "
           "it without adding noise. context_threshold counts steps of the WHOLE schedule, so tau 0.5 keeps "
           f"steps 1-{STEPS // 2} on your prompt alone whichever stage runs them; with merge=at_end the first "
           "stage hands both streams to the second through its latent. Put your base model in the first "
           "stage and your refiner (or low-noise expert) in the second.", (20, 0), (760, 190))
    ck, enc, neg, lat = common(g)
    kw = dict(noise_seed=SEED, steps=STEPS, cfg=7.0, sampler_name="euler", scheduler="normal",
              safety_weight=0.6, context_threshold=0.5, merge="at_end")
    first = g.add("DualLatentKSamplerAdvanced", (C2, None), title=f"Stage 1: steps 0..{split}", model=out(ck, 0),
                  add_noise="enable", positive=out(enc, 0), negative=out(neg, 0), safe_positive=out(enc, 1),
                  latent_image=out(lat, 0), start_at_step=0, end_at_step=split,
                  return_with_leftover_noise="enable", **kw)
    second = g.add("DualLatentKSamplerAdvanced", (C3, None), title=f"Stage 2: steps {split}..end",
                   model=out(ck, 0), add_noise="disable", positive=out(enc, 0), negative=out(neg, 0),
                   safe_positive=out(enc, 1), latent_image=out(first, 0), start_at_step=split,
                   end_at_step=10000, return_with_leftover_noise="disable", **kw)
    dec = g.add("VAEDecode", (C4, None), samples=out(second, 0), vae=out(ck, 2))
    g.add("SaveImage", (C5, None), images=out(dec, 0), filename_prefix="safety/two_stage_safe")
    return g


REGION_MASK = "safety_region_mask.png"  # workflows/inputs/, copied into ComfyUI/input by setup_host.sh


def region_result(g, ks, ck, name):
    """Decode the result and save it beside the `region` output (white = where safety acted)."""
    dec = g.add("VAEDecode", (C3, None), title="Decode result", samples=out(ks, 0), vae=out(ck, 2))
    shown = g.add("MaskToImage", (C3, None), title="Region as an image", mask=out(ks, 3))
    side = g.add("ImageStitch", (C4, None), title="Result | region", image1=out(dec, 0), image2=out(shown, 0),
                 direction="right", match_image_size=True, spacing_width=0, spacing_color="white")
    g.add("SaveImage", (C5, None), title="Save result | region", images=out(side, 0),
          filename_prefix=f"safety/{name}")


def safe_region_txt2img(info):
    g = Graph(info, "safe_region_txt2img")
    g.note("Protect only the region (auto).\n\nregion_mode=auto: the sampler finds where the safety context "
           "changes the prediction (the difference of the two branches, normalised per image, smoothed, "
           "averaged over the steps after the threshold, above region_threshold, grown by one latent pixel) and "
           "mixes the safety stream in there only; everywhere else the image is your prompt's (with "
           "merge=at_end: exactly KSampler's latent). No extra model call. The `region` output shows where "
           "safety acted: saved beside the result. Raise region_threshold for a tighter region.", (20, 0), (760, 190))
    ck, enc, neg, lat = common(g)
    ks = dual_sampler(g, ck, enc, neg, lat, region_mode="auto", region_threshold=0.5)
    region_result(g, ks, ck, "safe_region_txt2img")
    return g


def safe_region_mask_txt2img(info):
    g = Graph(info, "safe_region_mask_txt2img")
    g.note("Protect only the region (your mask).\n\nLoadImageMask loads a mask (white = where the safety stream "
           f"may act; here {REGION_MASK}, an ellipse; upload your own, or draw one with the mask editor on a "
           "Load Image node and link its MASK). region_mode=mask: inside the mask the streams are mixed with "
           "safety_weight (soft masks mix partly), outside it the result is your prompt's image (merge=at_end: "
           "exactly KSampler's latent). One mask for the batch, or one per image.", (20, 0), (760, 190))
    ck, enc, neg, lat = common(g)
    mask = g.add("LoadImageMask", (C0, None), title="Region mask", image=REGION_MASK, channel="red")
    ks = dual_sampler(g, ck, enc, neg, lat, region=out(mask, 0), region_mode="mask")
    region_result(g, ks, ck, "safe_region_mask_txt2img")
    return g


def content_aware_txt2img(info):
    g = Graph(info, "content_aware_txt2img")
    g.note("Act only where unsafe content forms (content check, NudeNet).\n\nSafety Detector (NudeNet) decodes "
           "the image forming at check steps with the model's VAE and looks for the classes listed (exposed "
           "breasts and genitalia by default; needs `pip install nudenet`). Where nothing is found the result is "
           "exactly KSampler's and no safety branch is ever run; where something is, the safety stream starts "
           "there and acts inside the detected boxes only (merge=at_end: outside them, KSampler's latent bit for "
           "bit). The region is saved beside the result; the sampler's `report` output (which item fired, at which "
           "step, with what score) can be linked to a text display such as Preview as Text. Nudity only: "
           "violence needs another detector.", (20, 0), (780, 210))
    ck, enc, neg, lat = common(g)
    det = g.add("SafetyDetectorNudeNet", (C1, None), vae=out(ck, 2),
                classes="FEMALE_BREAST_EXPOSED, FEMALE_GENITALIA_EXPOSED, MALE_GENITALIA_EXPOSED, ANUS_EXPOSED",
                score_threshold=0.5, check_start=0.3, check_every=2, go_back=0, grow=1, confirm=True)
    ks = dual_sampler(g, ck, enc, neg, lat, detector=out(det, 0), safety_weight=0.8)
    region_result(g, ks, ck, "content_aware_txt2img")
    return g


BUILDERS = {"safe_txt2img": safe_txt2img, "safe_txt2img_custom_sampler": safe_txt2img_custom_sampler,
            "manual_dual_branches": manual_dual_branches, "weight_sweep": weight_sweep,
            "gated_txt2img": gated_txt2img, "two_stage_safe": two_stage_safe,
            "safe_region_txt2img": safe_region_txt2img, "safe_region_mask_txt2img": safe_region_mask_txt2img,
            "content_aware_txt2img": content_aware_txt2img}


def all_builders():
    """BUILDERS and the model-family workflows (scripts/family_workflows.py, which uses this module)."""
    from family_workflows import FAMILY_BUILDERS
    return {**BUILDERS, **FAMILY_BUILDERS}


def build_all(object_info, out_dir=WORKFLOW_DIR, names=None):
    written = []
    for name, build in all_builders().items():
        if names and name not in names:
            continue
        try:
            g = build(object_info)
        except KeyError as e:
            print(f"[workflows] skipped {name}: {e} is not in this host's /object_info", file=sys.stderr)
            continue
        path = Path(out_dir) / f"{name}.json"
        path.write_text(json.dumps(g.to_json(), indent=1) + "\n")
        written.append(path)
        print(f"[workflows] wrote {path}")
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--object-info", help="a saved /object_info JSON (default: start the host and ask it)")
    ap.add_argument("names", nargs="*", help=f"only these ({', '.join(all_builders())})")
    args = ap.parse_args()
    if args.object_info:
        info = json.loads(Path(args.object_info).read_text())
    else:
        import tempfile
        from comfy_host import HostServer
        with tempfile.TemporaryDirectory() as tmp:
            srv = HostServer(tmp)
            try:
                info = srv.get("/object_info", timeout=120)
            finally:
                srv.stop()
    build_all(info, names=args.names)


if __name__ == "__main__":
    main()
