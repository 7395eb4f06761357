"""Dual latent sampling with the host's own pieces: noise, sigmas, samplers, previews.

`sample_dual` is what DualLatentKSampler runs. It prepares inputs exactly as the host's
KSampler does (same noise for the same seed, same sigmas for steps/denoise, same sampler
object), then runs DualLatentGuider:

- every_step: one sampler run with the merged denoised estimate after the threshold;
- at_end: the user stream (recording its pre-threshold model outputs) and the safe
  stream (replaying them, so the shared leading steps cost no model call), then
  (1 - w) * z_u + w * z_s. Both runs share the seed, sigmas and therefore the noise of
  ancestral/SDE samplers. Model cost N + (N - k) steps.

With a `stage` (DualLatentKSamplerAdvanced) only part of the schedule runs, sliced as the host's
KSamplerAdvanced slices it; tau stays a fraction of the whole schedule (the guider is given
it), and at_end stages hand both streams on inside the latent.
With a region (nodes/region.py) the weight becomes w * m per latent pixel: every_step merges
the branches' denoised estimates so in the guider; at_end merges the final latents so, and
its `auto` region comes from the two streams' denoised estimates at the steps after the
threshold (read from the sampler's callback: no model call). A region known to be empty
before sampling runs the host's KSampler; one that covers everything runs the global method.
"""
import comfy.samplers
import nodes
import torch

from .checked_sampling import sample_checked
from .cond_math import check_conditioning_list as check_conditioning, safe_branch_conditioning
from .content_guider import ContentAwareGuider
from .guider import DualLatentGuider
from .host_sampling import (STREAMS_KEY, check_latent_channels, prepare_inputs, progress_callback,  # noqa: F401
                            region_output, run_guider)
from .latent_math import check_finite, choice_error, context_steps, segment_sigmas, weighted_merge
from .region import AutoRegion, region_merge, resolve
from .settings import SafetySettings

NO_DETECTOR = "no detector connected: the safety context acted as set"


def make_guider(model, positive, negative, safe_positive, cfg, settings, schedule_sigmas=None):
    """The guider for `settings` (a SafetySettings): content-checked when a detector is set."""
    guider = (ContentAwareGuider if settings.content is not None else DualLatentGuider)(model)
    guider.set_conds(positive, negative, safe_positive)
    guider.set_settings(cfg, settings)
    guider.schedule_sigmas = schedule_sigmas
    return guider


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
                latent, denoise, settings, stage=None):
    """Returns (latent, user_latent, safe_latent) as LATENT dicts and the region as a MASK, for
    `settings` (a SafetySettings).

    `stage` (KSamplerAdvanced's part of the schedule): dict(start_step, last_step,
    force_full_denoise, disable_noise). tau stays a fraction of the whole schedule."""
    stage = stage or {}
    w, tau, merge = settings.weight, settings.threshold, settings.merge
    for err in (choice_error("sampler_name", sampler_name, comfy.samplers.SAMPLER_NAMES),
                choice_error("scheduler", scheduler, comfy.samplers.SCHEDULER_NAMES)):
        if err:  # the host's KSampler would silently fall back to another sampler
            raise ValueError(err)
    check_conditioning("positive", positive)
    check_conditioning("safe_positive", safe_positive)
    check_finite("latent_image", latent["samples"])
    check_latent_channels(model, latent["samples"])
    if settings.content is not None and w > 0.0:
        return sample_checked(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, safe_positive,
                              latent, denoise, settings, stage)
    # The region is resolved before sampling: an empty one costs no model call.
    guider = make_guider(model, positive, negative, safe_positive, cfg, settings)
    shape = latent["samples"].shape
    active, where = resolve(guider.region, shape) if w > 0.0 else (False, None)
    w = w if active else 0.0
    ones = torch.ones((shape[0], 1) + tuple(shape[2:]))

    def as_latent(samples, streams=None):
        out = {k: v for k, v in latent.items() if k != STREAMS_KEY}
        out["samples"] = samples
        if streams is not None:
            out[STREAMS_KEY] = streams
        return out

    def outputs(merged, user, safe, mask, streams=None):
        report = NO_DETECTOR if settings.content is None else "safety_weight is 0: nothing was checked"
        return (as_latent(merged, streams), as_latent(user), as_latent(safe),
                region_output(model, shape, mask), report)

    # The host's own path where the method reduces to it: no extra model call at all.
    if w == 0.0 or (w == 1.0 and tau == 0.0 and merge == "every_step" and where is None):
        cond = positive if w == 0.0 else safe_branch_conditioning(positive, safe_positive)
        (out,) = nodes.common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, cond, negative, latent,
                                       denoise=denoise, **host_stage_args(stage))
        samples = check_finite("sampler output", out["samples"])
        return outputs(samples, samples, samples, ones * w)

    latent_image, noise, noise_mask, full_sigmas, sampler = prepare_inputs(
        model, seed, steps, sampler_name, scheduler, latent, denoise, stage.get("disable_noise", False))
    sigmas = segment_sigmas(full_sigmas, stage.get("start_step"), stage.get("last_step"),
                            stage.get("force_full_denoise", False))
    if sigmas is None:  # no step in this stage: the host returns the latent as it came
        return outputs(latent_image, latent_image, latent_image, ones * 0.0)
    n, run = int(full_sigmas.shape[-1]) - 1, int(sigmas.shape[-1]) - 1

    if merge == "every_step":
        guider.schedule_sigmas = full_sigmas
        samples = run_guider(guider, noise, latent_image, sampler, sigmas, noise_mask,
                             progress_callback(model, run), seed)
        mask = ones if where is None else (where.final(shape) if isinstance(where, AutoRegion) else where)
        branches = guider.branch_estimates()
        if branches is None:  # no step after the threshold computed both branches
            return outputs(samples, samples, samples, mask)
        user, safe = (model.model.process_latent_out(b).to(samples.device) for b in branches)
        return outputs(samples, user, safe, mask)

    # at_end: the user stream records its pre-threshold outputs, the safe stream replays them.
    # Steps are counted on the whole schedule: this stage runs first..first + run.
    first = min(stage.get("start_step") or 0, n)
    k = context_steps(tau, n)
    user_start, safe_start = carried_streams(latent) or (latent_image, latent_image)
    safe_steps = max(0, first + run - max(k, first))
    total = run + safe_steps
    auto, user_x0 = isinstance(where, AutoRegion), {}
    local_k = run - safe_steps   # the first step of this stage after the threshold
    user_guider = make_guider(model, positive, negative, None, cfg, SafetySettings(0.0, tau), full_sigmas)
    user_guider.record = []
    z_u = run_guider(user_guider, noise, user_start, sampler, sigmas, noise_mask,
                     traced(progress_callback(model, total), user_x0.__setitem__ if auto else None, local_k), seed)
    z_s = z_u  # before the threshold the safe stream is the user stream
    if safe_steps > 0:
        safe_guider = make_guider(model, positive, negative, safe_positive, cfg, SafetySettings(1.0, tau),
                                  full_sigmas)
        safe_guider.replay = user_guider.record
        z_s = run_guider(safe_guider, noise, safe_start, sampler, sigmas, noise_mask,
                         traced(progress_callback(model, total, offset=run, skip_below=local_k),
                                auto_from_streams(where, user_x0) if auto else None, local_k), seed)
    if where is None:
        mask = ones
        merged = weighted_merge(z_u, z_s, w, names=("user_latent", "safe_latent"))
    else:
        mask = where.final(shape) if auto else where
        merged = region_merge(z_u, z_s, w, mask)
    # A stage that stops early hands both streams to the next at_end stage with the latent.
    streams = (z_u, z_s, merged) if first + run < n else None
    return outputs(merged, z_u, z_s, mask, streams)


def host_stage_args(stage):
    """KSamplerAdvanced's arguments to the host's common_ksampler."""
    return dict(disable_noise=stage.get("disable_noise", False), start_step=stage.get("start_step"),
                last_step=stage.get("last_step"), force_full_denoise=stage.get("force_full_denoise", False))


def carried_streams(latent):
    """(user, safe) handed over by an earlier at_end stage, if this latent is still its output."""
    streams = latent.get(STREAMS_KEY)
    if streams is not None and streams[2] is latent["samples"]:
        return streams[0], streams[1]
    return None
