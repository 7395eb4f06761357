"""The example workflows shipped in workflows/ and the converter, shared by the workflow tests."""
import json
import sys
from pathlib import Path

PACK_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PACK_DIR / "scripts"))
from workflow_to_api import convert, widget_slots, CONTROL, UPLOAD  # noqa: E402,F401

WORKFLOW_DIR = PACK_DIR / "workflows"
OUR_NODES = {"SafetyContextEncode", "DualLatentKSampler", "DualLatentKSamplerAdvanced", "SafetyDualGuider",
             "LatentWeightedMerge", "SafetyPromptGate"}
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
}


def workflow_names():
    return sorted(p.stem for p in WORKFLOW_DIR.glob("*.json"))


def load_workflow(name):
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text())


def widget_names(object_info, ctype):
    """The widget names the frontend gives a node, UI-only control widgets included."""
    return [s if isinstance(s, str) else "upload" if s is UPLOAD else "control_after_generate"
            for s in widget_slots(object_info[ctype])]
