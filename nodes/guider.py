"""DualLatentGuider: the every-step dual latent reconstruction as a host guider.

Only `predict_noise` is overridden, so every sampler, scheduler, model family and host
feature (noise, inpainting masks, previews, wrappers) runs on the host's own code.

After the context threshold the user prompt, the negative and the safety context run in
one batched `calc_cond_batch` call, and the denoised estimate is
    D = D(c_n) + g * ((1 - w) * D(c_u) + w * D(c_s) - D(c_n)),
which equals the per-step weighted sum of the two streams for samplers linear in D.
Before the threshold, at w = 0, or at w = 1 the guider is the host's own CFG path with
one positive, so no branch with weight 0 is ever evaluated. With refresh r > 1 the safety
branch is measured at every r-th evaluation after the threshold only (nodes/refresh.py).

With a region (set_region; the math in region.py) w becomes w * m per latent pixel: a given
MASK fitted to the latent, or the `auto` region grown from the two branches' difference at each
dual step (no extra model call). An empty region is w = 0, a full one the global merge.
"""
import math

import comfy.samplers
import comfy.utils
import node_helpers

from .cond_math import safe_branch_conditioning
from .latent_math import at_or_below, check_unit_interval, switch_sigma, weighted_merge
from .refresh import CorrectionCache
from .region import AutoRegion, FixedRegion, check_region_settings, region_merge, resolve


def has_cfg_hooks(model_options):
    """Pre/post-cfg hooks may keep state between calls (the CFG++ samplers read the
    unconditional estimate through one), so with hooks every evaluation really runs."""
    return bool(model_options.get("sampler_pre_cfg_function")) or bool(model_options.get("sampler_post_cfg_function"))


class DualLatentGuider(comfy.samplers.CFGGuider):
    safety_weight = 0.0
    context_threshold = 0.0
    record = None   # list: pre-threshold outputs are appended here (at_end user stream)
    replay = None   # list: pre-threshold outputs are served from here (at_end safe stream),
                    # so the steps both streams share cost no second model call
    last_branches = None  # (user, uncond, safe) denoised of the latest dual step, for previews
    refresh = 1           # measure the safety branch every `refresh`-th evaluation after the threshold
    schedule_sigmas = None  # the whole schedule when this run is one stage of it (tau counts its steps)
    region = None  # where the safety stream may act: None (everywhere), FixedRegion or AutoRegion

    def set_conds(self, positive, negative, safe_positive=None):
        conds = {"positive": positive, "negative": negative}
        if safe_positive is not None:
            # The safe branch is the positive with its text swapped (same guidance, image inputs,
            # control, areas), and a positive prompt to the model's extra conds.
            safe = safe_branch_conditioning(positive, safe_positive)
            conds["safe_positive"] = node_helpers.conditioning_set_values(safe, {"prompt_type": "positive"})
        self.inner_set_conds(conds)

    def set_settings(self, cfg, settings):
        """The method's settings (a checked settings.SafetySettings) and the cfg scale."""
        self.cfg = cfg
        self.refresh = settings.refresh
        self.safety_weight = settings.weight
        self.context_threshold = settings.threshold
        if self.safety_weight > 0 and "safe_positive" not in self.original_conds:
            raise ValueError("safe_positive is required when safety_weight > 0")
        self.set_region(settings.region_mode, settings.region, settings.region_threshold)

    def sample(self, *args, **kwargs):
        self.corrections = CorrectionCache(self.refresh)  # per run: the count starts at the threshold
        if self.region is not None:
            self.region.reset()  # the auto region belongs to one sampling run
        return super().sample(*args, **kwargs)

    def before_threshold(self, timestep, model_options):
        """True while the user prompt alone guides (noise levels above the threshold's)."""
        if self.context_threshold == 0.0:
            return False
        sigmas = self.threshold_schedule(model_options)
        if sigmas is None:
            raise RuntimeError("the host did not pass sample_sigmas; context_threshold needs them")
        return not at_or_below(timestep.max(), switch_sigma(sigmas, self.context_threshold))

    def threshold_schedule(self, model_options):
        """The schedule tau is a fraction of: the whole one when given (split sigmas, two-stage
        samplers), else the sigmas this run samples."""
        if self.schedule_sigmas is not None:
            return self.schedule_sigmas
        return model_options.get("transformer_options", {}).get("sample_sigmas")

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        before = self.before_threshold(timestep, model_options)
        if before and self.replay and not has_cfg_hooks(model_options):
            sigma, out = self.replay.pop(0)
            if not bool((sigma == timestep).all()):
                raise RuntimeError("at_end replay went out of step with the user stream")
            return out
        w, region = self.step_region(x, 0.0 if before else self.safety_weight, timestep)
        positive = self.conds.get("positive")
        negative = self.conds.get("negative")
        if w == 0.0 or (w == 1.0 and region is None):
            cond = positive if w == 0.0 else self.conds["safe_positive"]
            out = comfy.samplers.sampling_function(self.inner_model, x, timestep, negative, cond, self.cfg,
                                                   model_options=model_options, seed=seed)
            if before and self.record is not None:
                self.record.append((timestep.clone(), out.clone()))
            return out
        return self.dual_cfg(x, timestep, model_options, w, positive, negative, self.conds["safe_positive"], region)

    def dual_cfg(self, x, timestep, model_options, w, positive, negative, safe, region=None):
        # Same rule as the host: at cfg 1 the negative branch contributes nothing.
        uncond = negative
        if math.isclose(self.cfg, 1.0) and not model_options.get("disable_cfg1_optimization", False):
            uncond = None
        if self.corrections.next_is_refresh():
            user_pred, uncond_pred, safe_pred = comfy.samplers.calc_cond_batch(
                self.inner_model, [positive, uncond, safe], x, timestep, model_options)
            self.corrections.store(user_pred, safe_pred)
        else:  # the host's own 2-cond call (1 at cfg 1); the safety branch from the last correction
            user_pred, uncond_pred = comfy.samplers.calc_cond_batch(
                self.inner_model, [positive, uncond], x, timestep, model_options)
            safe_pred = self.corrections.safe_estimate(user_pred)
        self.last_branches = (user_pred, uncond_pred, safe_pred)
        cond_pred = self.merge_branches(user_pred, safe_pred, w, region)
        # sampling_function() is skipped, so re-apply its pre-cfg hooks on the merged branch;
        # cfg_function() then applies the host's cfg and post-cfg hooks as usual.
        out = [cond_pred, uncond_pred]
        for fn in model_options.get("sampler_pre_cfg_function", []):
            out = fn({"conds": [positive, uncond], "conds_out": out, "cond_scale": self.cfg, "timestep": timestep,
                      "input": x, "sigma": timestep, "model": self.inner_model, "model_options": model_options})
        return comfy.samplers.cfg_function(self.inner_model, out[0], out[1], self.cfg, x, timestep,
                                           model_options=model_options, cond=positive, uncond=uncond)

    # -- region (issue 13): where the safety stream may act ---------------------------------

    def set_region(self, region_mode="none", region=None, region_threshold=0.5):
        """region_mode none: everywhere; mask: the MASK `region`; auto: from the branches."""
        check_region_settings(region_mode, region)
        threshold = check_unit_interval("region_threshold", region_threshold)
        self.region = None
        if region_mode == "mask":
            self.region = FixedRegion(region, comfy.utils.reshape_mask)
        elif region_mode == "auto":
            self.region = AutoRegion(threshold)

    def step_region(self, x, w, timestep=None):
        """(weight, region) for one evaluation: weight 0 where the region is empty, region None
        where it is the whole latent (then the global method runs, bit for bit)."""
        if w == 0.0 or self.region is None:
            return w, None
        active, region = resolve(self.region, x.shape)
        return (w if active else 0.0), region

    def merge_branches(self, user, safe, w, region):
        if region is None:
            return weighted_merge(user, safe, w, names=("user branch", "safe branch"))
        mask = region.update(user, safe) if isinstance(region, AutoRegion) else region
        return region_merge(user, safe, w, mask)

    def branch_estimates(self):
        """Per-branch guided x0 estimates of the latest dual step (host latent space), or None."""
        if self.last_branches is None:
            return None
        user, uncond, safe = self.last_branches
        return tuple(uncond + (b - uncond) * self.cfg for b in (user, safe))
