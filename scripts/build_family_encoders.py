"""Seeded text encoders and VAEs for the model-family workflows (workflows/sdxl_*, flux_*, wan_*).

Each file is built from the host's own classes in the file layout its loaders read, then read
back by the host's own loader (CLIPLoader/DualCLIPLoader's `load_clip`, VAELoader's `VAE`),
which must detect the intended model and hold every tensor bit for bit, or the build fails:

- CLIP-L (ViT-L/14 text tower, 123 M parameters) and CLIP-G (bigG, 695 M): full size, since the
  host's configs are fixed; together what DualCLIPLoader(type sdxl) reads.
- TAESD-format VAEs for 4-channel (SD1.5/SDXL) and 16-channel (SD3/Flux) latents, ~2.4 M each.
- A Wan 2.1 video VAE with a small base width (the host reads it from the file).

Called by build_family_checkpoints.py (setup_host.sh step 7) for the missing ones.
"""
import os
import time

from build_tiny_checkpoint import init_weights_

WAN_VAE_DIM = 16  # the real Wan 2.1 VAE has 96


def _clip_module(kind):
    import torch
    import comfy.sd1_clip
    import comfy.sdxl_clip
    cls = {"clip_l": comfy.sd1_clip.SDClipModel, "clip_g": comfy.sdxl_clip.SDXLClipG}[kind]
    return cls(device="cpu", dtype=torch.float32).transformer


def _loaded_clip(kind, path):
    """The transformer the host's CLIPLoader builds from this one file."""
    import comfy.sd
    clip = comfy.sd.load_clip([path], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION)
    model = clip.cond_stage_model
    # one CLIP-L file: SD1ClipModel (.clip_l); one CLIP-G file: SDXLRefinerClipModel (.clip_g)
    return getattr(model, kind).transformer


def _vae_module(kind):
    import comfy.taesd.taesd
    import comfy.ldm.wan.vae
    if kind == "taesd4":
        return comfy.taesd.taesd.TAESD(latent_channels=4)
    if kind == "taesd16":
        return comfy.taesd.taesd.TAESD(latent_channels=16)
    return comfy.ldm.wan.vae.WanVAE(dim=WAN_VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                    attn_scales=[], temperal_downsample=[False, True, True], dropout=0.0)


def _loaded_vae(kind, path):
    import comfy.sd
    import comfy.utils
    sd, metadata = comfy.utils.load_torch_file(path, return_metadata=True)
    vae = comfy.sd.VAE(sd=sd, metadata=metadata)
    want = {"taesd4": ("TAESD", 4), "taesd16": ("TAESD", 16), "wan21_vae": ("WanVAE", 16)}[kind]
    got = (type(vae.first_stage_model).__name__, vae.latent_channels)
    if got != want:
        raise RuntimeError(f"{kind}: the host's VAE loader built {got}, expected {want}")
    return vae.first_stage_model


# name -> (models/ subfolder, file, module maker, host loader)
ENCODERS = {
    "clip_l": ("text_encoders", "tiny-clip-l-random.safetensors", _clip_module, _loaded_clip),
    "clip_g": ("text_encoders", "tiny-clip-g-random.safetensors", _clip_module, _loaded_clip),
    "taesd4": ("vae", "tiny-taesd-4ch-random.safetensors", _vae_module, _loaded_vae),
    "taesd16": ("vae", "tiny-taesd-16ch-random.safetensors", _vae_module, _loaded_vae),
    "wan21_vae": ("vae", "tiny-wan21-vae-random.safetensors", _vae_module, _loaded_vae),
}


def encoder_path(models_dir, name):
    folder, file, _, _ = ENCODERS[name]
    return os.path.join(models_dir, folder, file)


def build_encoder(name, models_dir, seed=0):
    import torch
    import safetensors.torch
    from build_family_checkpoints import init_buffers_
    _, _, make, load = ENCODERS[name]
    t0 = time.time()
    module = make(name)
    g = torch.Generator().manual_seed(seed)
    init_weights_(module, g)
    init_buffers_(module, g)
    if name.startswith("taesd"):  # latents used as they come (random scales would flatten the image)
        with torch.no_grad():
            module.vae_scale.fill_(1.0)
            module.vae_shift.fill_(0.0)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()
          if "position_ids" not in k}
    del module  # CLIP-G in float32 is 2.8 GB: gone before the host's loader reads the file back
    path = encoder_path(models_dir, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path[:-len(".safetensors")] + ".partial.safetensors"
    safetensors.torch.save_file(sd, tmp, metadata={"built_by": "comfyui-safety-dual-latent", "seed": str(seed)})
    loaded = load(name, tmp).state_dict()
    bad = [k for k in sd if k not in loaded or not torch.equal(loaded[k].to(sd[k].dtype), sd[k])]
    if bad:
        raise RuntimeError(f"{name}: {len(bad)} tensors differ after the host's loader, e.g. {bad[:3]}")
    os.replace(tmp, path)
    n = sum(v.numel() for v in sd.values())
    return dict(family=name, params=n, mib=os.path.getsize(path) / 2**20, seconds=time.time() - t0, path=path)


def missing(models_dir):
    return [n for n in ENCODERS if not os.path.exists(encoder_path(models_dir, n))]
