"""The pack's V3 extension: the list of nodes the host registers."""
from typing_extensions import override

from comfy_api.latest import ComfyExtension, io

from .advanced_node import DualLatentKSamplerAdvanced
from .detector_nodes import SafetyDetectorBranchDifference, SafetyDetectorNudeNet
from .encode_node import SafetyContextEncode
from .gate_node import SafetyPromptGate
from .merge_node import LatentWeightedMerge
from .sampler_nodes import DualLatentKSampler, SafetyDualGuider


class SafetyDualLatentExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [SafetyContextEncode, DualLatentKSampler, DualLatentKSamplerAdvanced, SafetyDualGuider, LatentWeightedMerge,
                SafetyPromptGate, SafetyDetectorNudeNet,
                SafetyDetectorBranchDifference]


async def comfy_entrypoint() -> SafetyDualLatentExtension:
    return SafetyDualLatentExtension()
