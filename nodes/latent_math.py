"""Latent arithmetic of the method: pure torch, nothing from the host.

The weighted sum is written as (1 - w) * a + w * b so that w = 0 returns `a` and
w = 1 returns `b` bit for bit (0 * x is exactly zero for finite x).
"""
import math

import torch


def check_unit_interval(name, value):
    """A weight or threshold must be a finite number in [0, 1]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(v) or v < 0.0 or v > 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def choice_error(name, value, options):
    """An error message if value is not one of options (None: not known yet, e.g. linked)."""
    if value is None or value in options:
        return None
    shown = ", ".join(map(str, options)) if len(options) <= 12 else f"{len(options)} names, see the dropdown"
    return f"{name} must be one of {shown}; got {value!r}"


def first_error(*messages):
    """For V3 validate_inputs: True, or the first error message."""
    return next((m for m in messages if m), True)


def check_finite(name, tensor):
    """Refuse NaN or infinity instead of propagating it into an image."""
    if not torch.is_tensor(tensor):
        raise ValueError(f"{name} must be a tensor, got {type(tensor).__name__}")
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        bad = int((~torch.isfinite(tensor)).sum())
        raise ValueError(f"{name} holds {bad} NaN or infinite values; refusing to propagate them")
    return tensor


def check_mergeable(name_a, a, name_b, b):
    """Same shape, or the same shape but for a batch of 1 that broadcasts against batch N."""
    if a.shape == b.shape:
        return
    same_rest = a.ndim == b.ndim and a.shape[1:] == b.shape[1:]
    if same_rest and (a.shape[0] == 1 or b.shape[0] == 1):
        return
    raise ValueError(
        f"{name_a} has shape {tuple(a.shape)} and {name_b} has shape {tuple(b.shape)}: "
        "they must match (a batch of 1 may pair with any batch size)")


def weighted_merge(a, b, weight, names=("latent_a", "latent_b")):
    """(1 - weight) * a + weight * b, exact at weight 0 and 1."""
    w = check_unit_interval("weight", weight)
    check_mergeable(names[0], a, names[1], b)
    if a.dtype != b.dtype or a.device != b.device:
        b = b.to(device=a.device, dtype=a.dtype)
    return (1.0 - w) * a + w * b


def context_steps(context_threshold, steps):
    """k = round(tau * N), rounding halves up: the leading steps that follow the user prompt alone."""
    tau = check_unit_interval("context_threshold", context_threshold)
    if int(steps) < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return min(int(steps), int(math.floor(tau * int(steps) + 0.5)))


def switch_sigma(sigmas, context_threshold):
    """The noise level from which on the safety context applies, or None if it never does.

    A model evaluation at sigma uses the safety context when sigma <= sigmas[k]. For
    one-evaluation-per-step samplers (euler, DDIM, DPM++ 2M, ...) that is exactly "steps
    k..N-1"; multi-evaluation samplers (heun, DPM++ 2S, ...) switch at the same noise level.
    """
    n = int(sigmas.shape[-1]) - 1
    k = context_steps(context_threshold, max(n, 0))
    if n <= 0 or k >= n:
        return None
    return float(sigmas[k])


def at_or_below(sigma, switch):
    """sigma <= switch, allowing for float32 round-off in solvers that recompute sigma."""
    return switch is not None and float(sigma) <= switch * (1.0 + 1e-5)


def segment_sigmas(sigmas, start_step=None, last_step=None, force_full_denoise=False):
    """The part of a schedule a KSamplerAdvanced-style stage runs, as the host slices it:
    steps start_step..last_step, the last sigma set to 0 when force_full_denoise cuts the
    schedule short. None when the stage has no step to run (the host returns its input).
    The given schedule is never modified."""
    n = int(sigmas.shape[-1]) - 1
    if last_step is not None and last_step < n:
        sigmas = sigmas[:last_step + 1].clone()
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step >= int(sigmas.shape[-1]) - 1:
            return None
        sigmas = sigmas[start_step:]
    return sigmas
