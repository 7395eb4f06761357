"""Detector nodes: each makes a SAFETY_DETECTOR (a content.ContentCheck) that DualLatentKSampler,
DualLatentKSamplerAdvanced and SafetyDualGuider take as their optional `detector` input."""
from comfy_api.latest import io

from . import nudenet_detector
from .content import BranchDifference, ContentCheck
from .latent_math import first_error

SafetyDetector = io.Custom("SAFETY_DETECTOR")


def detector_input():
    return SafetyDetector.Input("detector", optional=True, tooltip=(
        "Connect a Safety Detector to act only where unsafe content forms in the image: the safety stream "
        "starts at the first check that fires and acts inside the detected mask; an image where nothing "
        "fires is KSampler's, bit for bit. region_mode must stay 'none'."))


def schedule_inputs():
    """When the check runs and how a detection acts (content.ContentCheck's fields)."""
    return [
        io.Float.Input("score_threshold", default=0.5, min=0.0, max=1.0, step=0.01, tooltip=(
            "An image fires when the detector's score reaches this.")),
        io.Float.Input("check_start", default=0.3, min=0.0, max=1.0, step=0.01, tooltip=(
            "The first check at this fraction of the steps (never before context_threshold): earlier checks "
            "see a blurrier image.")),
        io.Int.Input("check_every", default=2, min=1, max=100, tooltip=(
            "Then a check every n-th step. Each check decodes the clean-image estimate with the VAE.")),
        io.Int.Input("go_back", default=0, min=0, max=100, tooltip=(
            "The safety stream starts this many steps before the check that fired (never before "
            "context_threshold): 0 goes on from there.")),
        io.Int.Input("grow", default=1, min=0, max=64, tooltip=(
            "The detected region grows by this many latent pixels (8 image pixels each for SD-type VAEs).")),
    ]


class SafetyDetectorNudeNet(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SafetyDetectorNudeNet",
            display_name="Safety Detector (NudeNet)",
            category="safety",
            description="Checks the image forming during sampling for nudity with NudeNet (an optional package: "
                        "pip install nudenet) and hands the detections to the safety samplers.",
            inputs=[
                io.Vae.Input("vae", tooltip="The model's VAE: it decodes the clean-image estimate for each check."),
                io.String.Input("classes", default=", ".join(nudenet_detector.DEFAULT_CLASSES), tooltip=(
                    "NudeNet classes that count as unsafe, separated by commas.")),
                *schedule_inputs(),
                io.Boolean.Input("confirm", default=True, optional=True, tooltip=(
                    "Act only if the last step's image shows the detection too (one more decode, of the images "
                    "that fired): content that appears mid-way and fades is left as KSampler made it.")),
            ],
            outputs=[SafetyDetector.Output(display_name="detector", tooltip=(
                "Connect to the detector input of KSampler (Safety Dual Latent), its Advanced variant or "
                "Safety Dual Guider."))],
        )

    @classmethod
    def validate_inputs(cls, classes=None):
        if not nudenet_detector.available():
            return nudenet_detector.INSTALL_HINT
        if classes is None:
            return True
        try:
            nudenet_detector.parse_classes(classes)
        except ValueError as e:
            return str(e)
        return first_error()

    @classmethod
    def execute(cls, vae, classes, score_threshold, check_start, check_every, go_back, grow,
                confirm=True) -> io.NodeOutput:
        detector = nudenet_detector.NudeNetDetector(nudenet_detector.parse_classes(classes), score_threshold)
        return io.NodeOutput(ContentCheck(detector, vae, score_threshold, check_start, check_every, go_back, grow,
                                          bool(confirm)))


class SafetyDetectorBranchDifference(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SafetyDetectorBranchDifference",
            display_name="Safety Detector (Branch Difference)",
            category="safety",
            description="A detector without an image model: at each check it compares your prompt's prediction "
                        "with the safety context's (two more conds in that step's model call) and fires where "
                        "they differ. It sees only what the prompt and the safety text differ in.",
            inputs=[
                io.Float.Input("score_threshold", default=0.05, min=0.0, max=1.0, step=0.01, tooltip=(
                    "An image fires when the mean change, relative to the mean size of your prompt's prediction, "
                    "reaches this (0 when the safety text equals your prompt).")),
                io.Float.Input("region_threshold", default=0.5, min=0.0, max=1.0, step=0.01, tooltip=(
                    "Where it acts: the latent pixels whose change, relative to the image's largest change, is "
                    "above this (as region_mode auto).")),
                *schedule_inputs()[1:],
            ],
            outputs=[SafetyDetector.Output(display_name="detector", tooltip=(
                "Connect to the detector input of KSampler (Safety Dual Latent), its Advanced variant or "
                "Safety Dual Guider."))],
        )

    @classmethod
    def execute(cls, score_threshold, region_threshold, check_start, check_every, go_back, grow) -> io.NodeOutput:
        return io.NodeOutput(ContentCheck(BranchDifference(region_threshold), None, score_threshold, check_start,
                                          check_every, go_back, grow))
