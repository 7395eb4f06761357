"""Refreshing the safety correction only every `refresh`-th evaluation: pure torch/stdlib.

After the context threshold the exact method evaluates the user prompt, the negative and the
safety context at every step. With refresh r > 1 the safety branch is measured only at every
r-th evaluation after the threshold (the first one always); in between the last measured
correction c = D(c_s) - D(c_u) is added to the fresh user estimate, so those evaluations cost
the host's ordinary call (2 conds, 1 at cfg 1):
    D(c_s) ~ D(c_u) + c,   merged = (1 - w) * D(c_u) + w * (D(c_u) + c).

Counting is per model evaluation of the guider, not per sampler step: one-evaluation samplers
(euler, DDIM, DPM++ 2M, ...) evaluate once per step, so refresh r measures every r-th step;
two-evaluation samplers (heun, dpm_2, DPM++ 2S, ...) with refresh 2 measure the first
evaluation of each step and reuse it for the second. Either way 1 in r evaluations pays for
the third cond, so the cost does not depend on the sampler.
"""
import math


def check_refresh(value):
    """refresh must be an integer >= 1 (1 = the exact method)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value or value < 1:
        raise ValueError(f"refresh must be an integer >= 1 (1 = the exact method), got {value!r}")
    return int(value)


def refresh_due(evaluation, refresh):
    """True if the `evaluation`-th evaluation after the threshold (0-based) measures the safety branch."""
    return evaluation % refresh == 0


def refreshes(evaluations, refresh):
    """How many of `evaluations` evaluations after the threshold measure the safety branch."""
    return -(-int(evaluations) // refresh)


def cost_ratio(steps, k, refresh, base_conds):
    """Conds evaluated by the dual method over KSampler's, for a one-evaluation-per-step sampler:
    KSampler evaluates `base_conds` per step (2, or 1 at cfg 1); the dual method one more at the
    refreshed steps after the k leading ones."""
    return (steps * base_conds + refreshes(steps - k, refresh)) / (steps * base_conds)


class CorrectionCache:
    """Per-sampling-run state: how many evaluations ran after the threshold, and the last
    measured correction (safe - user, in the host's latent space)."""

    def __init__(self, refresh=1):
        self.refresh = check_refresh(refresh)
        self.reset()

    def reset(self):
        self.evaluations = 0
        self.correction = None

    def next_is_refresh(self):
        """Counts one evaluation after the threshold; True if it must measure the safety branch."""
        due = self.correction is None or refresh_due(self.evaluations, self.refresh)
        self.evaluations += 1
        return due

    def store(self, user, safe):
        """Keeps safe - user for the evaluations until the next refresh (nothing at refresh 1)."""
        self.correction = None if self.refresh == 1 else safe - user

    def safe_estimate(self, user):
        """The safety branch's estimate from the fresh user estimate and the stored correction."""
        c = self.correction
        if c.dtype != user.dtype or c.device != user.device:
            c = c.to(device=user.device, dtype=user.dtype)
        return user + c
