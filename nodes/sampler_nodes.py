"""DualLatentKSampler, DualLatentKSamplerAdvanced and SafetyDualGuider: the method as sampler
and guider nodes."""
import comfy.samplers
from comfy_api.latest import io

from .detector_nodes import detector_input
from .dual_sampler import check_conditioning, make_guider, sample_dual
from .latent_math import choice_error, first_error
from .region import REGION_MODES
from .settings import MERGE_MODES, SafetySettings


def model_input():
    return io.Model.Input("model", tooltip="The model used for denoising.")


def seed_input(name):
    return io.Int.Input(name, default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                        tooltip="The noise seed (shared by both streams).")


def sampling_inputs():
    """steps, cfg, sampler_name, scheduler: as in the host's KSampler."""
    return [
        io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampler steps (of the whole schedule)."),
        io.Float.Input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                       tooltip="Classifier-free guidance scale (1 for guidance-distilled models)."),
        io.Combo.Input("sampler_name", options=comfy.samplers.SAMPLER_NAMES, tooltip="The sampler."),
        io.Combo.Input("scheduler", options=comfy.samplers.SCHEDULER_NAMES, tooltip="The scheduler."),
    ]


def conditioning_inputs():
    return [
        io.Conditioning.Input("positive", tooltip="Your prompt's conditioning."),
        io.Conditioning.Input("negative", tooltip="The negative conditioning (shared by both streams)."),
        io.Conditioning.Input("safe_positive", tooltip="The safety context's conditioning (SafetyContextEncode); "
                                                       "the safe branch is your positive with this text."),
    ]


def weight_input():
    return io.Float.Input("safety_weight", default=0.5, min=0.0, max=1.0, step=0.01,
                          tooltip="Share of the safety context: 0 is the plain sampler (no extra cost), "
                                  "1 follows the safety context alone after the threshold.")


def threshold_input():
    return io.Float.Input("context_threshold", default=0.2, min=0.0, max=1.0, step=0.01,
                          tooltip="tau: the first round(tau * steps) steps follow your prompt alone, keeping its "
                                  "layout; higher keeps more of the original image.")


def refresh_input():
    return io.Int.Input("refresh", default=1, min=1, max=100, optional=True,
                        tooltip="1: the exact method. r > 1: after the threshold the safety context is evaluated "
                                "only every r-th model evaluation and its last correction is reused in between "
                                "(about 1 + 1/(2r) x a KSampler at cfg > 1, 1 + 1/r x at cfg 1): faster, "
                                "approximate.")


def region_inputs():
    """The optional region inputs (issue 13), shared by the sampler and the guider."""
    return [
        io.Mask.Input("region", optional=True, tooltip=(
            "Where the safety stream may act (white), used with region_mode 'mask'; soft masks allowed. "
            "Pixel-space masks are resized to the latent: one mask for the batch or one per item.")),
        io.Combo.Input("region_mode", options=list(REGION_MODES), default="none", optional=True, tooltip=(
            "none: the whole image (the global method). mask: only inside `region`. auto: only where the "
            "safety context changes the prediction, found from the two branches (no extra model call).")),
        io.Float.Input("region_threshold", default=0.5, min=0.0, max=1.0, step=0.01, optional=True, tooltip=(
            "auto: a latent pixel joins the region when its change, relative to the image's largest change "
            "and averaged over the steps after the threshold, is above this. Higher = a tighter region; "
            "1 = nowhere (plain KSampler).")),
    ]


def merge_input():
    return io.Combo.Input("merge", options=list(MERGE_MODES), default="every_step",
                          tooltip="every_step: the streams are merged at every step after the threshold "
                                  "(one batched model call, about 1.5x a KSampler); at_end: two full streams, "
                                  "merged once at the end (N + (N - k) steps).")


def dual_outputs():
    return [
        io.Latent.Output("latent", display_name="latent", tooltip="The result: (1 - w) * user + w * safe, per the merge mode."),
        io.Latent.Output("user_latent", display_name="user_latent", tooltip=(
            "at_end: your prompt's full stream (exactly KSampler's result). every_step: the final-step "
            "denoised estimate of your prompt's branch. Repeats `latent` where that branch was not "
            "computed (safety_weight 0 or 1).")),
        io.Latent.Output("safe_latent", display_name="safe_latent", tooltip=(
            "at_end: the safety-context stream, started from your stream after the threshold. "
            "every_step: the final-step denoised estimate of the safety-context branch. Repeats "
            "`latent` where that branch was not computed (safety_weight 0 or 1).")),
    ]


def report_output():
    return io.String.Output("report", display_name="report", tooltip=(
        "With a detector: per batch item, whether a check fired, at which step, its score and classes."))


def region_output():
    return io.Mask.Output("region_mask", display_name="region", tooltip=(
        "Where the safety stream acted (pixel space, one mask per batch item): the fitted `region`, "
        "the auto region, all white for region_mode none, all black where safety did not act "
        "(safety_weight 0, or an empty region)."))


def check_choices(sampler_name=None, scheduler=None, merge=None, more=()):
    """The host checks V1 combos itself; V3 combos (0.3.x) are checked here. `more`:
    (name, value, options) of a node's other combos."""
    return first_error(choice_error("sampler_name", sampler_name, comfy.samplers.SAMPLER_NAMES),
                       choice_error("scheduler", scheduler, comfy.samplers.SCHEDULER_NAMES),
                       choice_error("merge", merge, MERGE_MODES), *(choice_error(*c) for c in more))


class DualLatentKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DualLatentKSampler",
            display_name="KSampler (Safety Dual Latent)",
            category="safety",
            description="A drop-in KSampler that reconstructs the image from your prompt's stream and a "
                        "safety-context stream started from the same noise.",
            inputs=[
                model_input(),
                seed_input("seed"),
                *sampling_inputs(),
                *conditioning_inputs(),
                io.Latent.Input("latent_image", tooltip="The latent to denoise (empty, img2img or inpainting)."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01, tooltip="Denoising strength."),
                weight_input(),
                threshold_input(),
                merge_input(),
                refresh_input(),
                *region_inputs(),
                detector_input(),
            ],
            outputs=[*dual_outputs(), region_output(), report_output()],
        )

    @classmethod
    def validate_inputs(cls, sampler_name=None, scheduler=None, merge=None, region_mode=None):
        return check_choices(sampler_name, scheduler, merge, [("region_mode", region_mode, REGION_MODES)])

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, safe_positive,
                latent_image, denoise, safety_weight, context_threshold, merge, refresh=1, region=None,
                region_mode="none", region_threshold=0.5, detector=None) -> io.NodeOutput:
        settings = SafetySettings(safety_weight, context_threshold, merge, refresh, region_mode, region,
                                  region_threshold, detector)
        return io.NodeOutput(*sample_dual(model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                          safe_positive, latent_image, denoise, settings))


class SafetyDualGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SafetyDualGuider",
            display_name="Safety Dual Guider",
            category="safety",
            description="A GUIDER for SamplerCustomAdvanced: the every-step dual latent reconstruction, with "
                        "your prompt, the negative and the safety context in one batched model call.",
            inputs=[
                io.Model.Input("model", tooltip="The model used for denoising."),
                io.Conditioning.Input("positive", tooltip="Your prompt's conditioning."),
                io.Conditioning.Input("negative", tooltip="The negative conditioning."),
                io.Conditioning.Input("safe_positive", tooltip="The safety context's conditioning."),
                io.Float.Input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale."),
                weight_input(),
                threshold_input(),
                refresh_input(),
                io.Sigmas.Input("full_sigmas", optional=True, tooltip=(
                    "Two-stage sampling (SplitSigmas): the whole schedule, so that context_threshold counts "
                    "its steps. Unconnected: the threshold counts the steps of the sigmas this guider samples.")),
                *region_inputs(),
                detector_input(),
            ],
            outputs=[io.Guider.Output(tooltip="Connect to SamplerCustomAdvanced's guider input.")],
        )

    @classmethod
    def validate_inputs(cls, region_mode=None):
        return first_error(choice_error("region_mode", region_mode, REGION_MODES))

    @classmethod
    def execute(cls, model, positive, negative, safe_positive, cfg, safety_weight,
                context_threshold, refresh=1, full_sigmas=None, region=None, region_mode="none",
                region_threshold=0.5, detector=None) -> io.NodeOutput:
        check_conditioning("positive", positive)
        check_conditioning("safe_positive", safe_positive)
        settings = SafetySettings(safety_weight, context_threshold, "every_step", refresh, region_mode, region,
                                  region_threshold, detector)
        return io.NodeOutput(make_guider(model, positive, negative, safe_positive, cfg, settings, full_sigmas))
