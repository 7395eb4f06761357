"""ContentAwareGuider: the method started by what the image shows, not by the prompt (issue 23).

`sample` runs the host's sampling twice at most:
1. the user stream alone, exactly as KSampler runs it (every model output recorded), while the
   sampler's callback keeps the clean-image estimates of the check steps;
2. after the run, each check's estimate is decoded by the model's VAE and handed to the detector
   (items that fired already are not decoded again). If nothing fires, pass 1's latent is the
   result: KSampler's, bit for bit, with no safety-branch model call;
3. otherwise the method runs once more over the whole batch: the steps before the earliest
   start are replayed from pass 1's record (no model call, and the same noise, so each item's
   trajectory up to its start is pass 1's), then each fired item's safety stream acts inside its
   detected mask from its own start. Items that did not fire keep pass 1's latent.
With confirm, an item that fired is judged once more on pass 1's last clean estimate (decoded
once, for the fired items only) and acts only if it fires there too.
every_step merges the branches inside the mask at each step; at_end runs the safety stream at
weight 1 and merges the final latents inside the mask, so outside it the user stream is kept
bit for bit.
"""
import comfy.model_management
import comfy.samplers
import torch

from .cond_math import same_text_items
from .content import ItemDecision, ItemSchedule, check_steps, clip_results, confirm, decide, item_masks
from .guider import DualLatentGuider, has_cfg_hooks
from .latent_math import at_or_below, context_steps
from .region import region_merge


class ContentAwareGuider(DualLatentGuider):
    content = None          # content.ContentCheck
    merge = "every_step"
    switch_step = None      # pass 2: the run-local step from which the method may act
    pass_one = False
    last_run = None         # (decisions, user latent, safe latent or None, item masks) of the latest run

    def set_settings(self, cfg, settings):
        super().set_settings(cfg, settings)
        self.content, self.merge = settings.content, settings.merge

    def before_threshold(self, timestep, model_options):
        if self.switch_step is None:
            return super().before_threshold(timestep, model_options)
        sigmas = model_options["transformer_options"]["sample_sigmas"]
        return not at_or_below(timestep.max(), float(sigmas[self.switch_step]))

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        if self.pass_one:   # the host's own CFG with the user's prompt, every output kept
            out = comfy.samplers.CFGGuider.predict_noise(self, x, timestep, model_options, seed)
            self.record.append((timestep.clone(), out.clone()))
            if getattr(self.content.detector, "uses_branches", False):
                self.measure_branches(x, timestep, model_options)
            return out
        return super().predict_noise(x, timestep, model_options, seed)

    def measure_branches(self, x, timestep, model_options):
        """For a branch detector at a check step: the user's and the safety context's predictions
        (one more model call of two conds; pass 1's output is not touched)."""
        sigmas = model_options["transformer_options"]["sample_sigmas"]
        hit = torch.nonzero(sigmas == timestep.max()).flatten()
        step = int(hit[0]) if len(hit) else None
        if step in self.due and step not in self.branches:
            user, safe = comfy.samplers.calc_cond_batch(
                self.inner_model, [self.conds["positive"], self.conds["safe_positive"]], x, timestep, model_options)
            self.branches[step] = (user.detach().float(), safe.detach().float())

    def step_region(self, x, w, timestep=None):
        if w == 0.0 or not isinstance(self.region, ItemSchedule):
            return super().step_region(x, w, timestep)
        mask = self.region.at(timestep.max())
        return (0.0, None) if mask is None else (w, mask)

    def local_threshold_step(self, sigmas):
        """(k counted in this run's own steps, the run's first step in the whole schedule, the
        whole schedule's steps): a stage runs a slice of the whole schedule, found by its first sigma."""
        whole = self.schedule_sigmas if self.schedule_sigmas is not None else sigmas
        n_whole = int(whole.shape[-1]) - 1
        first = int((whole.float().cpu() - float(sigmas[0])).abs().argmin())
        k = context_steps(self.context_threshold, n_whole)
        return max(0, k - first), first, n_whole

    def sample(self, noise, latent_image, sampler, sigmas, denoise_mask=None, callback=None, disable_pbar=False,
               seed=None):
        if self.content is None or self.safety_weight == 0.0 or int(sigmas.shape[-1]) < 2:
            return super().sample(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed)
        if latent_image.is_nested or latent_image.ndim not in (4, 5):
            raise ValueError("the content check needs an image latent [batch, channels, height, width] or a video "
                             f"latent [batch, channels, frames, height, width]; got one of shape "
                             f"{tuple(latent_image.shape)}: disconnect the detector")
        k, first, n_whole = self.local_threshold_step(sigmas)
        due = self.due = {s - first for s in check_steps(n_whole, self.context_threshold, self.content) if s >= first}
        estimates, self.branches, last = {}, {}, {}

        def keep(step, x0, x, total):
            if step in due:
                estimates[step] = x0.detach().clone()
            if self.content.confirm and step == total - 1:
                last["x0"] = x0.detach().clone()
            if callback is not None:
                callback(step, x0, x, total)

        self.record, self.switch_step, self.region = [], None, None
        if getattr(self.content.detector, "uses_branches", False) and "safe_positive" not in self.original_conds:
            raise ValueError("the branch-difference detector needs safe_positive")
        self.pass_one = True
        try:
            user = super().sample(noise, latent_image, sampler, sigmas, denoise_mask, keep, disable_pbar, seed)
        finally:
            self.pass_one = False
        decisions = self.run_checks(estimates, int(latent_image.shape[0]), k)
        if self.content.confirm:
            self.confirm_items(decisions, last.get("x0"))
        same = same_text_items(self.original_conds["positive"], self.original_conds["safe_positive"],
                               int(latent_image.shape[0]))
        for d, is_same in zip(decisions, same):
            d.same_text = is_same
        fired = [d.acts for d in decisions]
        masks = item_masks(decisions, user.shape, self.content.grow)
        if not any(fired):
            self.record, self.last_run = None, (decisions, user, None, masks)
            return user
        return self.second_pass(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed,
                                user, decisions, masks)

    def second_pass(self, noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed, user,
                    decisions, masks):
        fired = torch.tensor([d.acts for d in decisions]).view(-1, *([1] * (user.ndim - 1)))
        starts = [d.start for d in decisions if d.acts]
        weight = self.safety_weight
        at_end = self.merge == "at_end"
        # at_end: the safety stream itself (weight 1, everywhere in each fired item), merged below
        region_masks = torch.where(fired, torch.ones_like(masks), masks) if at_end else masks
        self.region = ItemSchedule(region_masks, [float(sigmas[d.start]) if d.acts else None for d in decisions])
        self.switch_step = min(starts)
        # the steps before the earliest start are pass 1's, served from its record (with cfg hooks,
        # which may keep state between calls, every evaluation runs again)
        recorded, self.record = self.record, None
        self.replay = [] if has_cfg_hooks(self.model_options) else recorded
        self.safety_weight = 1.0 if at_end else weight
        try:
            safe = super().sample(noise, latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed)
        finally:
            self.safety_weight, self.switch_step, self.replay = weight, None, None
        safe = safe.to(user.device)
        if at_end:
            out = region_merge(user, safe, weight, masks.to(user.device))
        else:
            out = torch.where(fired.to(user.device), safe, user)
        self.last_run = (decisions, user, safe, masks)
        return out

    def detect_items(self, detector, x0):
        """One result per batch item: the decoded image's, or for a video the clip's, folded from
        every decoded frame (content.clip_results)."""
        images = self.content.decoder.decode(self.model_patcher.model.process_latent_out(x0))
        images = images.to(comfy.model_management.intermediate_device()).float()
        if images.ndim == 4:
            return detector.detect(images)
        frames = int(images.shape[1])   # a video VAE decodes [batch, frames, height, width, 3]
        results = detector.detect(images.reshape(-1, *images.shape[2:]))
        if len(results) != images.shape[0] * frames:
            raise RuntimeError(f"the detector {detector.name!r} returned {len(results)} results "
                               f"for {images.shape[0] * frames} video frames")
        return clip_results(results, frames, self.content.score_threshold)

    def confirm_items(self, decisions, last_x0):
        """With confirm: the items that fired are judged once more on the last step's clean
        estimate. A sampler that never reported its last step leaves them acting (unconfirmed is
        never read as safe)."""
        todo = [i for i, d in enumerate(decisions) if d.fired_at is not None]
        if todo and last_x0 is not None:
            confirm(decisions, self.detect_items(self.content.detector, last_x0[todo]), self.content)

    def run_checks(self, estimates, batch, threshold_step):
        """Decode each check step's estimate (items not fired yet) and fold in the detector's say."""
        decisions = [ItemDecision() for _ in range(batch)]
        for step in sorted(estimates):
            todo = [i for i, d in enumerate(decisions) if d.fired_at is None]
            if not todo:
                break
            detector = self.content.detector
            if getattr(detector, "uses_branches", False):
                if step not in self.branches:
                    continue   # a step the sampler never evaluated at its own sigma
                user, safe = self.branches[step]
                results = detector.judge(user[todo], safe[todo])
            else:
                results = self.detect_items(detector, estimates[step][todo])
            if len(results) != len(todo):
                raise RuntimeError(f"the detector {detector.name!r} returned {len(results)} results "
                                   f"for {len(todo)} images")
            subset = [decisions[i] for i in todo]
            decide(subset, step, results, self.content, threshold_step)
        return decisions
