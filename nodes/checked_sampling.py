"""The content-checked sampler (issue 23): DualLatentKSampler's path when a detector is connected.
The guider (content_guider.py) runs the checks and the passes; this prepares its inputs as the
host's KSampler does and shapes its outputs like the prompt-driven sampler's."""
import comfy.model_management
import torch

from .content_guider import ContentAwareGuider
from .host_sampling import STREAMS_KEY, prepare_inputs, progress_callback, region_output, run_guider
from .latent_math import segment_sigmas


def sample_checked(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, safe_positive, latent,
                   denoise, settings, stage):
    """The content-checked method (ContentAwareGuider): the same outputs as sample_dual, the
    region being where the detector fired, and a report line per item."""
    if latent.get(STREAMS_KEY) is not None or (settings.merge == "at_end" and stage.get("last_step") is not None
                                               and stage["last_step"] < steps):
        raise ValueError("a detector with merge at_end works within one sampler run: let this stage run to the "
                         "end of the schedule, or use merge every_step")
    latent_image, noise, noise_mask, full_sigmas, sampler = prepare_inputs(
        model, seed, steps, sampler_name, scheduler, latent, denoise, stage.get("disable_noise", False))
    sigmas = segment_sigmas(full_sigmas, stage.get("start_step"), stage.get("last_step"),
                            stage.get("force_full_denoise", False))
    shape = latent_image.shape
    as_latent = lambda samples: {**{k: v for k, v in latent.items() if k != STREAMS_KEY}, "samples": samples}
    if sigmas is None:
        zero = region_output(model, shape, torch.zeros((shape[0], 1) + tuple(shape[2:])))
        return (as_latent(latent_image),) * 3 + (zero, "no step to run in this stage: nothing was checked")
    guider = ContentAwareGuider(model)
    guider.set_conds(positive, negative, safe_positive)
    guider.set_settings(cfg, settings)
    guider.schedule_sigmas = full_sigmas
    samples = run_guider(guider, noise, latent_image, sampler, sigmas, noise_mask,
                         progress_callback(model, int(sigmas.shape[-1]) - 1), seed)
    decisions, user, safe, masks = guider.last_run
    device = comfy.model_management.intermediate_device()
    user = user.to(device)
    safe = user if safe is None else safe.to(device)
    report = "\n".join(d.report(i) for i, d in enumerate(decisions))
    region = masks.expand((shape[0], 1) + tuple(shape[2:]))   # a clip's mask on each of its latent frames
    return as_latent(samples), as_latent(user), as_latent(safe), region_output(model, shape, region), report
