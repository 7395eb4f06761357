"""Per-family set-up for the model-family tests: the tiny diffusion model of each family
(scripts/build_family_checkpoints.py, loaded by the host's UNETLoader), CONDITIONING built
directly (these families' text encoders are billions of parameters), and empty latents
from the host's own nodes.

`decorate` adds the model inputs a family's positive carries besides its text (FluxGuidance's
guidance, a Wan I2V start image): the safe branch must receive them too.
"""
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from build_family_checkpoints import FAMILIES, LARGE, file_name  # noqa: E402,F401
from method_helpers import CallLog, Runner, recorded_model  # noqa: E402


def randn(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# name -> text width, pooled width (None: the encoder has no pooled output), latent maker,
# cfg used in the invariant runs, the positive's extra model inputs, token counts of the
# positive, safety and negative texts (CLIP-based encoders pad to multiples of 77; the others
# give the prompt's length, and `append` makes the safety text longer), and the model calls
# per step measured on the host: (before the threshold, after it).
SPECS = {
    "sdxl": dict(text=2048, pooled=1280, latent="image4", cfg=4.0, tokens=(77, 154, 77), calls=(1, 1)),
    "sd3": dict(text=4096, pooled=2048, latent="image16", cfg=4.0, calls=(2, 3)),
    "flux_dev": dict(text=4096, pooled=2048, latent="image16", cfg=1.0, guidance=2.0, calls=(1, 2)),
    "qwen_image": dict(text=3584, pooled=None, latent="image16", cfg=2.5, calls=(2, 3)),
    "wan21_t2v": dict(text=4096, pooled=None, latent="video16", cfg=4.0, calls=(2, 3)),
    "wan21_i2v": dict(text=4096, pooled=None, latent="video16", cfg=4.0, start_image=True, calls=(2, 3)),
    "wan22_5b": dict(text=4096, pooled=None, latent="video48", cfg=4.0, calls=(2, 3)),
    "hunyuan_video": dict(text=4096, pooled=768, latent="video16", cfg=1.0, guidance=4.0, calls=(1, 2)),
    "ltxv": dict(text=4096, pooled=None, latent="ltxv", cfg=3.0, attention_mask=True, calls=(2, 3)),
}


class Family(Runner):
    """One family's model, conditionings and latents, loaded through the real host."""

    def __init__(self, host, name):
        self.host, self.name, self.spec = host, name, SPECS[name]
        (self.model,) = host.call("UNETLoader", unet_name=file_name(name), weight_dtype="default")
        positive, safe, negative = self.spec.get("tokens", (7, 12, 5))
        self.raw_positive = self.text(positive, seed=1)
        self.raw_safe = self.text(safe, seed=2)
        self.positive = self.decorate(self.raw_positive)
        self.safe_reference = self.decorate(self.raw_safe)   # what the safe branch must receive
        self.negative = self.text(negative, seed=3)
        self.safe = self.raw_safe   # the safe_positive input: the safety text as encoded, nothing else

    def text(self, tokens, seed):
        opts = {}
        if self.spec["pooled"]:
            opts["pooled_output"] = randn(1, self.spec["pooled"], seed=seed + 100)
        if self.spec.get("attention_mask"):
            opts["attention_mask"] = torch.ones(1, tokens, dtype=torch.long)
        return [[randn(1, tokens, self.spec["text"], seed=seed), opts]]

    def decorate(self, cond):
        h = self.host
        if "guidance" in self.spec:
            (cond,) = h.call("FluxGuidance", conditioning=cond, guidance=self.spec["guidance"])
        if self.spec.get("start_image"):
            latent = self.empty_latent()["samples"]
            image = randn(*latent.shape, seed=5)
            mask = torch.ones(1, 1, latent.shape[2], latent.shape[3], latent.shape[4])
            mask[:, :, :1] = 0.0   # the first frame is given
            # What WanImageToVideo sets (it needs the Wan VAE to encode the image).
            cond = set_values(cond, concat_latent_image=image, concat_mask=mask)
        return cond

    def empty_latent(self, batch_size=1):
        h, kind = self.host, self.spec["latent"]
        if kind == "image4":
            return h.empty_latent(64, 64, batch_size)
        if kind == "image16":
            return h.call("EmptySD3LatentImage", width=64, height=64, batch_size=batch_size)[0]
        if kind == "video16":
            return h.call("EmptyHunyuanLatentVideo", width=64, height=64, length=5, batch_size=batch_size)[0]
        if kind == "video48":   # Wan 2.2's VAE: 16x spatial, 4x temporal compression
            return {"samples": torch.zeros(batch_size, 48, 2, 4, 4)}
        if kind == "ltxv":
            return h.call("EmptyLTXVLatentVideo", width=64, height=64, length=9, batch_size=batch_size)[0]
        raise ValueError(kind)

    def settings(self):
        return dict(seed=7, steps=4, cfg=self.spec["cfg"], sampler_name="euler", scheduler="simple", denoise=1.0)


def set_values(cond, **values):
    return [[t, {**d, **values}] for t, d in cond]


class InputLog(CallLog):
    """Also records the tensors among the model inputs in `c` of each batched call."""

    def wrapper(self, apply_model, args):
        self.calls.append((float(args["timestep"].max()), list(args["cond_or_uncond"]), args["input"].clone(),
                           {k: v for k, v in args["c"].items() if torch.is_tensor(v)}))
        return apply_model(args["input"], args["timestep"], **args["c"])

    def per_sigma(self):
        """Model calls at each noise level, in order."""
        counts = {}
        for sigma, *_ in self.calls:
            counts[sigma] = counts.get(sigma, 0) + 1
        return list(counts.values())


def logged(model):
    return recorded_model(model, InputLog())


def rows_of(call, branch, key):
    """The rows of model input `key` that belong to `branch` (0 user, 1 negative, 2 safe) in one call."""
    _, order, x, c = call
    value = c[key]
    per = value.shape[0] // len(order)
    i = order.index(branch)
    return value[i * per:(i + 1) * per]
