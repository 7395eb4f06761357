"""The host's own sampling pieces, prepared as its KSampler prepares them (noise, sigmas,
sampler, progress bar and previews) and the region as a pixel MASK: shared by the prompt-driven
sampler (dual_sampler.py) and the content-checked one (checked_sampling.py)."""
import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import torch

from .latent_math import check_finite
from .region import to_pixels

STREAMS_KEY = "safety_dual_streams"  # at_end: (user, safe, merged) carried from one stage to the next


def check_latent_channels(model, samples):
    """A non-empty latent must have the model's channel count (the host pads only empty ones)."""
    channels = model.get_model_object("latent_format").latent_channels
    if not samples.is_nested and samples.shape[1] != channels and bool(samples.any()):
        raise ValueError(f"latent_image has {samples.shape[1]} channels but this model's latents have "
                         f"{channels}: encode the image with this model's VAE")


def prepare_inputs(model, seed, steps, sampler_name, scheduler, latent, denoise, disable_noise=False):
    """Noise, latent, mask, sigmas and sampler exactly as the host's KSampler builds them."""
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
    if disable_noise:
        noise = torch.zeros(latent_image.size(), dtype=latent_image.dtype, layout=latent_image.layout, device="cpu")
    else:
        noise = comfy.sample.prepare_noise(latent_image, seed, latent.get("batch_index"))
    ks = comfy.samplers.KSampler(model, steps=steps, device=model.load_device, sampler=sampler_name,
                                 scheduler=scheduler, denoise=denoise, model_options=model.model_options)
    return latent_image, noise, latent.get("noise_mask"), ks.sigmas, comfy.samplers.sampler_object(ks.sampler)


def progress_callback(model, total_steps, offset=0, skip_below=0):
    """The host's progress bar and previews, over the steps of several runs."""
    inner = latent_preview.prepare_callback(model, total_steps)

    def callback(step, x0, x, _run_steps):
        if step >= skip_below:
            inner(offset + step - skip_below, x0, x, total_steps)
    return callback


def run_guider(guider, noise, latent_image, sampler, sigmas, noise_mask, callback, seed):
    samples = guider.sample(noise, latent_image, sampler, sigmas, denoise_mask=noise_mask, callback=callback,
                            disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)
    samples = samples.to(comfy.model_management.intermediate_device())
    # Refuse rather than propagate: a diverged run must not pass as an image.
    return check_finite("sampler output", samples)


def region_output(model, shape, mask):
    """The region as a pixel-space MASK (each latent pixel a block of the model's downscale)."""
    scale = getattr(model.get_model_object("latent_format"), "spacial_downscale_ratio", 8)
    return to_pixels(mask.to(comfy.model_management.intermediate_device()), scale)
