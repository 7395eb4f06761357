"""Shared set-up for the method tests: conditionings, a call-recording model, runners."""
import torch


class CallLog:
    """Records every batched model call through the host's unet function wrapper."""

    def __init__(self):
        self.calls = []  # (sigma, cond_or_uncond, input clone)

    def wrapper(self, apply_model, args):
        self.calls.append((float(args["timestep"].max()), list(args["cond_or_uncond"]), args["input"].clone()))
        return apply_model(args["input"], args["timestep"], **args["c"])

    def reset(self):
        self.calls = []

    def sizes(self):
        return [len(c[1]) for c in self.calls]


def recorded_model(model, log=None):
    log = log or CallLog()
    m = model.clone()
    m.set_model_unet_function_wrapper(log.wrapper)
    return m, log


class Runner:
    """KSampler and DualLatentKSampler runs with shared settings: needs host, model, positive,
    safe (the safe_positive input), negative, settings() and empty_latent()."""

    def settings(self):
        return dict(seed=7, steps=6, cfg=7.0, sampler_name="euler", scheduler="normal", denoise=1.0)

    def common(self, **over):
        kw = dict(model=self.model, negative=self.negative, latent_image=self.empty_latent(), **self.settings())
        kw.update(over)
        return kw

    def ksampler(self, positive=None, **over):
        (out,) = self.host.call("KSampler", positive=positive or self.positive, **self.common(**over))
        return out

    def dual(self, safety_weight, context_threshold, merge, **over):
        """DualLatentKSampler's (latent, user_latent, safe_latent, region); dual_report adds `report`."""
        return self.dual_report(safety_weight, context_threshold, merge, **over)[:4]

    def dual_report(self, safety_weight, context_threshold, merge, **over):
        return self.host.call("DualLatentKSampler", positive=self.positive, safe_positive=self.safe,
                              safety_weight=safety_weight, context_threshold=context_threshold, merge=merge,
                              **self.common(**over))


class Setup(Runner):
    def __init__(self, host, tiny, prompt="a naked woman on a beach", preset="sexual", mode="append"):
        self.host = host
        self.model, self.clip, self.vae = tiny
        self.positive, self.safe, self.safe_text = host.call(
            "SafetyContextEncode", clip=self.clip, text=prompt, preset=preset, mode=mode)
        self.negative = host.encode(self.clip, "blurry, low quality")

    def empty_latent(self):
        return self.host.empty_latent(64, 64, 1)


def same(a, b):
    return torch.equal(a["samples"], b["samples"])
