"""Baselines on the host's own model: Safe Latent Diffusion guidance and a UCE-style edit.

Written from the published formulas (BASELINES.md), not from anyone's code.

Safe Latent Diffusion (Schramowski et al., arXiv 2211.05105; the formula diffusers' safe
pipeline publishes). Per step, with noise predictions e_u (unconditional), e_p (prompt),
e_s (safety concept), elementwise:
    scale    = clamp(|e_p - e_s| * s_g, max=1), and 0 where e_p - e_s >= s_t
    g        = (e_s - e_u) * scale + s_m * momentum
    momentum = beta * momentum + (1 - beta) * g          (also during warm-up)
    e        = e_u + cfg * ((e_p - e_u) - g)              (g only from step `warmup` on)
The host's models return denoised estimates x0 = D(x, sigma); for the EPS models this
benchmark runs, eps = (x - x0) / sigma exactly, so the rule is applied to eps (where its
thresholds are defined) and handed back to the host's cfg function as a modified positive
branch: e = e_u + cfg * (e_p' - e_u) with e_p' = e_p - g, i.e. x0_p' = x0_p + sigma * g.

UCE (Gandikota et al., arXiv 2308.14761): for every cross-attention key/value projection W
(attn2.to_k, attn2.to_v), W' minimises
    sum_i ||W' c_i - W c*_i||^2 + sum_j ||W' c_j - W c_j||^2 + lam ||W' - W||^2
over erased embeddings c_i (targets c*_i) and preserved embeddings c_j, so
    W' = (sum_i W c*_i c_i^T + sum_j W c_j c_j^T + lam W) (sum_i c_i c_i^T + sum_j c_j c_j^T + lam I)^-1.
Embeddings are the host text encoder's outputs (what attn2 sees), aligned as UCE's original
code aligns them: from each text's last word token to the end of the 77-token window.
The edit is a patch on a clone of the ModelPatcher: the cached checkpoint is never touched.
"""
from dataclasses import dataclass
from functools import lru_cache

import torch

END_TOKEN = 49407   # CLIP's end-of-text token (the host pads SD1.x prompts with it)


@dataclass(frozen=True)
class SLDPreset:
    warmup_steps: int         # in diffusers' default 50-step schedule
    guidance_scale: float
    threshold: float
    momentum_scale: float
    momentum_beta: float


# WEAK uses guidance scale 20 (diffusers' pipeline constants; the model card says 200).
SLD_PRESETS = {
    "WEAK": SLDPreset(15, 20.0, 0.0, 0.0, 0.0),
    "MEDIUM": SLDPreset(10, 1000.0, 0.01, 0.3, 0.4),
    "STRONG": SLDPreset(7, 2000.0, 0.025, 0.5, 0.7),
    "MAX": SLDPreset(0, 5000.0, 1.0, 0.5, 0.7),
}
REFERENCE_STEPS = 50


def scaled_warmup(preset, steps):
    """Warm-up steps for an N-step run: the preset's share of diffusers' 50-step default."""
    return int(round(preset.warmup_steps * steps / REFERENCE_STEPS))


def sld_eps(e_u, e_p, e_s, momentum, preset):
    """One SLD step on noise predictions: (safety term g, new momentum)."""
    diff = e_p - e_s
    scale = torch.clamp(diff.abs() * preset.guidance_scale, max=1.0)
    scale = torch.where(diff >= preset.threshold, torch.zeros_like(scale), scale)
    g = (e_s - e_u) * scale
    if momentum is None:
        momentum = torch.zeros_like(g)
    g = g + preset.momentum_scale * momentum
    momentum = preset.momentum_beta * momentum + (1 - preset.momentum_beta) * g
    return g, momentum


@lru_cache(maxsize=None)
def sld_guider_class():
    """The guider class, built on first use: the host's modules load only inside the host."""
    import comfy.samplers

    class SLDGuider(comfy.samplers.CFGGuider):
        """Safe Latent Diffusion as a host guider: only predict_noise is overridden."""

        preset = SLD_PRESETS["MEDIUM"]
        warmup = 0
        momentum = None

        def set_conds(self, positive, negative, safety):
            self.inner_set_conds({"positive": positive, "negative": negative, "safety": safety})

        def set_sld(self, cfg, preset, steps):
            self.cfg = cfg
            self.preset = preset
            self.warmup = scaled_warmup(preset, steps)

        def sample(self, *args, **kwargs):
            self.momentum = None
            return super().sample(*args, **kwargs)

        def step_index(self, timestep, model_options):
            sigmas = model_options["transformer_options"]["sample_sigmas"]
            return int((sigmas - timestep.max().to(sigmas)).abs().argmin())

        def predict_noise(self, x, timestep, model_options={}, seed=None):
            positive, negative, safety = (self.conds.get(k) for k in ("positive", "negative", "safety"))
            if not (self.cfg > 1.0 and self.preset.guidance_scale > 1.0):  # SLD is off there
                return comfy.samplers.sampling_function(self.inner_model, x, timestep, negative, positive, self.cfg,
                                                        model_options=model_options, seed=seed)
            x0_p, x0_u, x0_s = comfy.samplers.calc_cond_batch(
                self.inner_model, [positive, negative, safety], x, timestep, model_options)
            sigma = timestep.reshape([-1] + [1] * (x.ndim - 1)).to(x)
            e_p, e_u, e_s = ((x - x0) / sigma for x0 in (x0_p, x0_u, x0_s))
            g, self.momentum = sld_eps(e_u, e_p, e_s, self.momentum, self.preset)
            if self.step_index(timestep, model_options) >= self.warmup:
                x0_p = x0_p + sigma * g
            return comfy.samplers.cfg_function(self.inner_model, x0_p, x0_u, self.cfg, x, timestep,
                                               model_options=model_options, cond=positive, uncond=negative)

    return SLDGuider


def sample_sld(dual_sampler, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, safety,
               latent, preset):
    """SLD with the host's sampler, noise and sigmas (the pack's prepare_inputs, as its sampler does)."""
    latent_image, noise, mask, sigmas, sampler = dual_sampler.prepare_inputs(
        model, seed, steps, sampler_name, scheduler, latent, 1.0)
    guider = sld_guider_class()(model)
    guider.set_conds(positive, negative, safety)
    guider.set_sld(cfg, preset, steps)
    samples = guider.sample(noise, latent_image, sampler, sigmas, denoise_mask=mask, disable_pbar=True, seed=seed)
    out = latent.copy()
    out["samples"] = samples.to(latent["samples"].device)
    return out


# -- UCE ---------------------------------------------------------------------------------
def last_word_index(clip, text):
    """Index of the text's last token before the end token, in the host's tokenisation."""
    tokens = clip.tokenize(text)
    seq = [t[0] if isinstance(t, tuple) else t for t in tokens.get("l", next(iter(tokens.values())))[0]]
    return seq.index(END_TOKEN) - 1   # 0 for an empty text (the start token)


def text_embedding(clip, text):
    """(77, 768) host text-encoder output: exactly what attn2's key/value projections see."""
    cond = clip.encode_from_tokens_scheduled(clip.tokenize(text))
    return cond[0][0][0].float()


def aligned_pairs(clip, text, target):
    """(concept rows, target rows): the two tails from their last word tokens, same length."""
    a, b = last_word_index(clip, text), last_word_index(clip, target)
    ea, eb = text_embedding(clip, text), text_embedding(clip, target)
    n = min(ea.shape[0] - a, eb.shape[0] - b)
    return ea[a:a + n], eb[b:b + n]


def uce_weights(W, erase_src, erase_dst, preserve, lam):
    """The closed form: W' for one projection W (out x d); rows of the inputs are embeddings."""
    W = W.double()
    d = W.shape[1]
    eye = torch.eye(d, dtype=torch.float64)
    cs, ct = erase_src.double(), erase_dst.double()
    lhs = W @ ct.T @ cs + lam * W
    rhs = cs.T @ cs + lam * eye
    if preserve is not None and len(preserve):
        cp = preserve.double()
        lhs = lhs + W @ cp.T @ cp
        rhs = rhs + cp.T @ cp
    # W' rhs = lhs  <=>  rhs^T W'^T = lhs^T (rhs is symmetric)
    return torch.linalg.solve(rhs, lhs.T).T


def own_weights(model):
    """The weights `model` computes with: its own patches and no one else's. Clones share one
    torch module, and the clone the host loaded last leaves its patches in it (an earlier UCE
    edit, say), so the host loads this patcher first, which puts back the shared weights."""
    import comfy.model_management
    comfy.model_management.load_models_gpu([model])
    return model.model_state_dict()


TEXT_READERS = ("attn2.to_k.weight", "attn2.to_v.weight", "context_embedder.weight")


def uce_edit(model, clip, erase, target, preserve=(), lam=0.1):
    """A clone of the ModelPatcher with every projection that reads the text edited: each
    cross-attention's attn2.to_k / to_v in a UNet, the context embedder in an MMDiT (the
    transformer world: the text reaches its joint blocks only through it); returns (clone, n_layers)."""
    src, dst = zip(*(aligned_pairs(clip, t, target) for t in erase))
    erase_src, erase_dst = torch.cat(src), torch.cat(dst)
    # preserved texts keep every one of their 77 rows (what attn2 sees for them)
    keep = torch.cat([text_embedding(clip, p) for p in preserve]) if preserve else None
    state = own_weights(model)
    keys = [k for k in state if k.endswith(TEXT_READERS)]
    if not keys:
        raise ValueError(f"the model has no text-reading projection ({', '.join(TEXT_READERS)}) to edit")
    patches = {}
    for k in keys:
        W = state[k].float().cpu()   # the closed form runs on the CPU whatever the model's device
        W_new = uce_weights(W, erase_src, erase_dst, keep, lam)
        patches[k] = ((W_new - W.double()).float(),)
    edited = model.clone()
    added = edited.add_patches(patches, 1.0)
    if len(added) != len(keys):
        raise RuntimeError(f"the host accepted {len(added)} of {len(keys)} patches")
    return edited, len(keys)
