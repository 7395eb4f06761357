"""Dual latent sampling with the host's own pieces: noise, sigmas, samplers, previews.

`sample_dual` is what DualLatentKSampler runs. It prepares inputs exactly as the host's
KSampler does (same noise for the same seed, same sigmas for steps/denoise, same sampler
object), then runs DualLatentGuider:

- every_step: one sampler run with the merged denoised estimate after the threshold;
- at_end: the user stream (recording its pre-threshold model outputs) and the safe
  stream (replaying them, so the shared leading steps cost no model call), then
  (1 - w) * z_u + w * z_s. Both runs share the seed, sigmas and therefore the noise of
  ancestral/SDE samplers. Model cost N + (N - k) steps.

With a region (nodes/region.py) the weight becomes w * m per latent pixel: every_step merges
the branches' denoised estimates so in the guider; at_end merges the final latents so, and
its `auto` region comes from the two streams' denoised estimates at the steps after the
threshold (read from the sampler's callback: no model call). A region known to be empty
before sampling runs the host's KSampler; one that covers everything runs the global method.
"""
import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
import nodes
import torch

from .guider import DualLatentGuider
from .latent_math import check_finite, check_unit_interval, choice_error, context_steps, weighted_merge
from .refresh import check_refresh
from .region import AutoRegion, region_merge, resolve, to_pixels

MERGE_MODES = ("every_step", "at_end")


def check_conditioning(name, cond):
    if not isinstance(cond, list) or len(cond) == 0:
        raise ValueError(f"{name} is empty: connect a CONDITIONING (e.g. from SafetyContextEncode)")
    return cond


def check_latent_channels(model, samples):
    """A non-empty latent must have the model's channel count (the host pads only empty ones)."""
    channels = model.get_model_object("latent_format").latent_channels
    if not samples.is_nested and samples.shape[1] != channels and bool(samples.any()):
        raise ValueError(f"latent_image has {samples.shape[1]} channels but this model's latents have "
                         f"{channels}: encode the image with this model's VAE")


def prepare_inputs(model, seed, steps, sampler_name, scheduler, latent, denoise):
    """Noise, latent, mask, sigmas and sampler exactly as the host's KSampler builds them."""
    latent_image = comfy.sample.fix_empty_latent_channels(model, latent["samples"])
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


def make_guider(model, positive, negative, safe_positive, cfg, safety_weight, context_threshold, refresh=1,
                region_mode="none", region=None, region_threshold=0.5):
    guider = DualLatentGuider(model)
    guider.set_conds(positive, negative, safe_positive)
    guider.set_safety(cfg, safety_weight, context_threshold, refresh)
    guider.set_region(region_mode, region, region_threshold)
    return guider


def region_output(model, shape, mask):
    """The region as a pixel-space MASK (each latent pixel a block of the model's downscale)."""
    scale = getattr(model.get_model_object("latent_format"), "spacial_downscale_ratio", 8)
    return to_pixels(mask.to(comfy.model_management.intermediate_device()), scale)


def traced(callback, seen, start):
    """The sampler callback, also handing each step's denoised estimate from step `start` on
    to `seen(step, x0)` (no model call); the callback itself when there is nothing to see."""
    if seen is None:
        return callback

    def trace(step, x0, x, total):
        if step >= start:
            seen(step, x0)
        callback(step, x0, x, total)
    return trace


def auto_from_streams(auto, user_x0):
    """at_end's auto region: each safe step's estimate against the user's at the same step."""
    auto.reset()

    def seen(step, x0):
        if step in user_x0:
            auto.update(user_x0.pop(step), x0)
    return seen


def sample_dual(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, safe_positive,
                latent, denoise=1.0, safety_weight=0.5, context_threshold=0.0, merge="every_step", refresh=1,
                region_mode="none", region=None, region_threshold=0.5):
    """Returns (latent, user_latent, safe_latent) as LATENT dicts and the region as a MASK."""
    w = check_unit_interval("safety_weight", safety_weight)
    tau = check_unit_interval("context_threshold", context_threshold)
    if check_refresh(refresh) > 1 and merge == "at_end":
        raise ValueError(f"refresh {refresh} applies to merge every_step only (at_end runs two full "
                         "streams with nothing to reuse): set refresh to 1 or merge to every_step")
    for err in (choice_error("merge", merge, MERGE_MODES),
                choice_error("sampler_name", sampler_name, comfy.samplers.SAMPLER_NAMES),
                choice_error("scheduler", scheduler, comfy.samplers.SCHEDULER_NAMES)):
        if err:  # the host's KSampler would silently fall back to another sampler
            raise ValueError(err)
    check_conditioning("positive", positive)
    check_conditioning("safe_positive", safe_positive)
    check_finite("latent_image", latent["samples"])
    check_latent_channels(model, latent["samples"])
    # The region is resolved before sampling: an empty one costs no model call.
    guider = make_guider(model, positive, negative, safe_positive, cfg, w, tau, refresh, region_mode, region,
                         region_threshold)
    shape = latent["samples"].shape
    active, where = resolve(guider.region, shape) if w > 0.0 else (False, None)
    w = w if active else 0.0
    ones = torch.ones((shape[0], 1) + tuple(shape[2:]))

    def as_latent(samples):
        out = latent.copy()
        out["samples"] = samples
        return out

    def outputs(merged, user, safe, mask):
        return as_latent(merged), as_latent(user), as_latent(safe), region_output(model, shape, mask)

    # The host's own path where the method reduces to it: no extra model call at all.
    if w == 0.0 or (w == 1.0 and tau == 0.0 and merge == "every_step" and where is None):
        cond = positive if w == 0.0 else safe_positive
        (out,) = nodes.common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, cond, negative, latent,
                                       denoise=denoise)
        check_finite("sampler output", out["samples"])
        return out, out, out, region_output(model, shape, ones * w)

    latent_image, noise, noise_mask, sigmas, sampler = prepare_inputs(
        model, seed, steps, sampler_name, scheduler, latent, denoise)
    n = int(sigmas.shape[-1]) - 1

    if merge == "every_step":
        samples = run_guider(guider, noise, latent_image, sampler, sigmas, noise_mask,
                             progress_callback(model, n), seed)
        mask = ones if where is None else (where.final(shape) if isinstance(where, AutoRegion) else where)
        branches = guider.branch_estimates()
        if branches is None:  # no step after the threshold computed both branches
            return outputs(samples, samples, samples, mask)
        user, safe = (model.model.process_latent_out(b).to(samples.device) for b in branches)
        return outputs(samples, user, safe, mask)

    # at_end: the user stream records its pre-threshold outputs, the safe stream replays them.
    k = context_steps(tau, n)
    total = n + (n - k)
    auto, user_x0 = isinstance(where, AutoRegion), {}
    user_guider = make_guider(model, positive, negative, None, cfg, 0.0, tau)
    user_guider.record = []
    z_u = run_guider(user_guider, noise, latent_image, sampler, sigmas, noise_mask,
                     traced(progress_callback(model, total), user_x0.__setitem__ if auto else None, k), seed)
    safe_guider = make_guider(model, positive, negative, safe_positive, cfg, 1.0, tau)
    safe_guider.replay = user_guider.record
    z_s = run_guider(safe_guider, noise, latent_image, sampler, sigmas, noise_mask,
                     traced(progress_callback(model, total, offset=n, skip_below=k),
                            auto_from_streams(where, user_x0) if auto else None, k), seed)
    if where is None:
        merged = weighted_merge(z_u, z_s, w, names=("user_latent", "safe_latent"))
        return outputs(merged, z_u, z_s, ones)
    mask = where.final(shape) if isinstance(where, AutoRegion) else where
    return outputs(region_merge(z_u, z_s, w, mask), z_u, z_s, mask)
