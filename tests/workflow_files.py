"""The example workflows shipped in workflows/ and the converter, shared by the workflow tests."""
import copy
import json
import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACK_DIR / "scripts"))
from workflow_to_api import convert, widget_slots, CONTROL, UPLOAD  # noqa: E402,F401

WORKFLOW_DIR = PACK_DIR / "workflows"
OUR_NODES = {"SafetyContextEncode", "DualLatentKSampler", "DualLatentKSamplerAdvanced", "SafetyDualGuider",
             "LatentWeightedMerge", "SafetyPromptGate", "SafetyDetectorNudeNet"}
# What each shipped workflow must contain (the list); gated_txt2img only once the gate exists.
EXPECTED = {
    "safe_txt2img": {"SafetyContextEncode", "DualLatentKSampler", "ImageStitch", "SaveImage"},
    "safe_txt2img_custom_sampler": {"SafetyContextEncode", "SafetyDualGuider", "SamplerCustomAdvanced",
                                    "RandomNoise", "KSamplerSelect", "BasicScheduler"},
    "manual_dual_branches": {"SafetyContextEncode", "KSamplerAdvanced", "LatentWeightedMerge"},
    "weight_sweep": {"SafetyContextEncode", "DualLatentKSampler", "LatentBatch"},
    "gated_txt2img": {"SafetyPromptGate", "DualLatentKSampler"},
    "two_stage_safe": {"SafetyContextEncode", "DualLatentKSamplerAdvanced", "SaveImage"},
    "safe_region_txt2img": {"SafetyContextEncode", "DualLatentKSampler", "MaskToImage", "SaveImage"},
    "safe_region_mask_txt2img": {"LoadImageMask", "DualLatentKSampler", "MaskToImage", "SaveImage"},
    "content_aware_txt2img": {"SafetyDetectorNudeNet", "DualLatentKSampler", "MaskToImage", "SaveImage"},
    "sdxl_safe_txt2img": {"UNETLoader", "DualCLIPLoader", "VAELoader", "SafetyContextEncode",
                          "DualLatentKSampler", "SaveImage"},
    "flux_safe_txt2img": {"UNETLoader", "DualCLIPLoader", "FluxGuidance", "EmptySD3LatentImage",
                          "DualLatentKSampler", "SaveImage"},
    "wan_safe_txt2video": {"UNETLoader", "CLIPLoader", "EmptyHunyuanLatentVideo", "DualLatentKSampler",
                           "CreateVideo", "SaveVideo"},
}

# The one substitution the tests make. Flux's T5-XXL (4.8 B parameters) and Wan's umT5-XXL
# (5.7 B) are too large to build for the tests, so flux_safe_txt2img and wan_safe_txt2video name
# them by their usual file names and cannot run as shipped on the tiny set-up. To RUN them (the
# frontend still loads and checks the shipped file untouched), their text-encoder loader node is
# replaced, in the API prompt only, by the host's CLIPLoader on the tiny full-size CLIP-L with
# type "sd3": it gives [B, 77k, 4096] text (CLIP-L zero-padded to T5's width, what Flux and Wan take)
# and a 2048-wide pooled output (CLIP-L's 768 + 1280 zeros; the tiny Flux is built for 2048).
# Every other node runs as shipped.
STAND_IN = {"class_type": "CLIPLoader",
            "inputs": {"clip_name": "tiny-clip-l-random.safetensors", "type": "sd3", "device": "default"}}
SUBSTITUTED = {"flux_safe_txt2img": ("DualCLIPLoader", {"t5xxl_fp16.safetensors"}),
               "wan_safe_txt2video": ("CLIPLoader", {"umt5_xxl_fp8_e4m3fn_scaled.safetensors"})}


def with_stand_in(name, prompt):
    """The API prompt of workflow `name` as the tests run it: its text-encoder loader swapped for
    STAND_IN where SUBSTITUTED says so (exactly one node), otherwise unchanged."""
    if name not in SUBSTITUTED:
        return prompt
    ctype, _ = SUBSTITUTED[name]
    ids = [i for i, n in prompt.items() if n["class_type"] == ctype]
    assert len(ids) == 1, f"{name}: expected one {ctype} to substitute, found {ids}"
    swapped = copy.deepcopy(prompt)
    swapped[ids[0]].update(copy.deepcopy(STAND_IN))
    return swapped


def workflow_names():
    return sorted(p.stem for p in WORKFLOW_DIR.glob("*.json"))


def load_workflow(name):
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text())


def widget_names(object_info, ctype):
    """The widget names the frontend gives a node, UI-only control widgets included."""
    return [s if isinstance(s, str) else "upload" if s is UPLOAD else "control_after_generate"
            for s in widget_slots(object_info[ctype])]
