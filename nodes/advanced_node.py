"""DualLatentKSamplerAdvanced: the method as a stand-in for KSamplerAdvanced in two-stage
workflows (SDXL base + refiner, Wan 2.2 high/low-noise experts).

Inputs are KSamplerAdvanced's plus the method's. context_threshold is a fraction of the
whole schedule (`steps`), not of the stage: tau 0.5 over 8 steps applies the safety context
at steps 5 to 8 however the steps are split between the stages. With `at_end`, a stage that
stops early hands both streams to the next DualLatentKSamplerAdvanced through its latent.
"""
from comfy_api.latest import io

from .detector_nodes import detector_input
from .dual_sampler import sample_dual
from .sampler_nodes import (check_choices, conditioning_inputs, dual_outputs, merge_input, model_input,
                            region_output, report_output, sampling_inputs, seed_input, weight_input)
from .settings import SafetySettings


class DualLatentKSamplerAdvanced(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DualLatentKSamplerAdvanced",
            display_name="KSampler Advanced (Safety Dual Latent)",
            category="safety",
            description="A drop-in KSamplerAdvanced (start/end step, leftover noise) with the safety-context "
                        "stream; the context threshold counts steps of the whole schedule.",
            inputs=[
                model_input(),
                io.Combo.Input("add_noise", options=["enable", "disable"], tooltip=(
                    "disable for a second stage that continues from a latent with leftover noise.")),
                seed_input("noise_seed"),
                *sampling_inputs(),
                *conditioning_inputs(),
                io.Latent.Input("latent_image", tooltip="The latent to denoise (or the previous stage's output)."),
                io.Int.Input("start_at_step", default=0, min=0, max=10000, tooltip="First step this stage runs."),
                io.Int.Input("end_at_step", default=10000, min=0, max=10000, tooltip="Step this stage stops at."),
                io.Combo.Input("return_with_leftover_noise", options=["disable", "enable"], tooltip=(
                    "enable for a first stage whose output a second stage continues.")),
                weight_input(),
                io.Float.Input("context_threshold", default=0.2, min=0.0, max=1.0, step=0.01, tooltip=(
                    "tau: the first round(tau * steps) steps of the WHOLE schedule follow your prompt alone, "
                    "whichever stage runs them.")),
                merge_input(),
                detector_input(),
            ],
            outputs=[*dual_outputs(), region_output(), report_output()],
        )

    @classmethod
    def validate_inputs(cls, sampler_name=None, scheduler=None, merge=None, add_noise=None,
                        return_with_leftover_noise=None):
        return check_choices(sampler_name, scheduler, merge, more=(
            ("add_noise", add_noise, ("enable", "disable")),
            ("return_with_leftover_noise", return_with_leftover_noise, ("disable", "enable"))))

    @classmethod
    def execute(cls, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler, positive, negative,
                safe_positive, latent_image, start_at_step, end_at_step, return_with_leftover_noise,
                safety_weight, context_threshold, merge, detector=None) -> io.NodeOutput:
        stage = dict(start_step=start_at_step, last_step=end_at_step, disable_noise=add_noise == "disable",
                     force_full_denoise=return_with_leftover_noise != "enable")
        return io.NodeOutput(*sample_dual(model, noise_seed, steps, cfg, sampler_name, scheduler, positive,
                                          negative, safe_positive, latent_image, 1.0,
                                          SafetySettings(safety_weight, context_threshold, merge, content=detector),
                                          stage=stage))
