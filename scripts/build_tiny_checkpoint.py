"""Build the tiny SD1.5-format test checkpoint with the host's own classes.

The host detects an SD1.5 UNet from tensor shapes (320 model channels, 768 context
dim), so the smallest checkpoint it accepts as SD1.5 has one level, one res-block and
transformer depth 1 (25.8 M UNet parameters). CLIP-L and the VAE have fixed configs in
the host and stay full size. Weights are seeded random values chosen to stay finite
over a sampler run; every key is present, so nothing is left uninitialised.

Usage: python build_tiny_checkpoint.py --comfyui PATH --out FILE [--seed N]
The module also exposes build_state_dict() for other scripts (the concept world).
"""
import argparse
import math
import os
import sys
import time

TINY_UNET = dict(
    image_size=32, in_channels=4, out_channels=4, model_channels=320,
    num_res_blocks=[1], channel_mult=(1,),
    transformer_depth=[1], transformer_depth_middle=1, transformer_depth_output=[1, 1],
    num_heads=8, context_dim=768, use_spatial_transformer=True,
    use_linear_in_transformer=False, legacy=False,
)

SD_VAE = {'double_z': True, 'z_channels': 4, 'resolution': 256, 'in_channels': 3, 'out_ch': 3,
          'ch': 128, 'ch_mult': [1, 2, 4, 4], 'num_res_blocks': 2, 'attn_resolutions': [], 'dropout': 0.0}


def add_host_to_path(comfyui):
    comfyui = os.path.abspath(comfyui)
    if comfyui not in sys.path:
        sys.path.insert(0, comfyui)


def init_weights_(module, generator):
    """Biases 0, other 1-d params 1, embeddings N(0, 0.02), weights N(0, 1/sqrt(fan_in))."""
    import torch
    for name, p in module.named_parameters():
        with torch.no_grad():
            if name.endswith("bias"):
                p.zero_()
            elif p.ndim <= 1:
                p.fill_(1.0)
            elif "embedding" in name:
                p.normal_(0.0, 0.02, generator=generator)
            else:
                fan_in = math.prod(p.shape[1:])
                p.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)


def build_modules(unet_overrides=None):
    """The three host modules of an SD1.5-format checkpoint, uninitialised."""
    import torch
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from comfy.ldm.models.autoencoder import AutoencodingEngine
    import comfy.sd1_clip

    ops = comfy.ops.disable_weight_init
    cfg = dict(TINY_UNET)
    cfg.update(unet_overrides or {})
    unet = UNetModel(**cfg, dtype=torch.float32, device="cpu", operations=ops)
    clip = comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)
    vae = AutoencodingEngine(
        regularizer_config={'target': "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
        encoder_config={'target': "comfy.ldm.modules.diffusionmodules.model.Encoder", 'params': SD_VAE},
        decoder_config={'target': "comfy.ldm.modules.diffusionmodules.model.Decoder", 'params': SD_VAE},
    )
    return unet, clip, vae


def checkpoint_state_dict(unet, clip, vae, dtype):
    """Key layout of an original SD1.5 checkpoint file."""
    sd = {}
    for k, v in unet.state_dict().items():
        sd["model.diffusion_model." + k] = v
    for k, v in clip.state_dict().items():
        if k.startswith("transformer.") and "position_ids" not in k:
            sd["cond_stage_model." + k] = v
    for k, v in vae.state_dict().items():
        sd["first_stage_model." + k] = v
    return {k: v.detach().to(dtype).contiguous() for k, v in sd.items()}


def build_state_dict(seed=0, dtype=None):
    import torch
    dtype = dtype or torch.float16
    g = torch.Generator().manual_seed(seed)
    unet, clip, vae = build_modules()
    for m in (unet, clip, vae):
        init_weights_(m, g)
    return checkpoint_state_dict(unet, clip, vae, dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", required=True, help="ComfyUI folder (the host)")
    ap.add_argument("--out", required=True, help="output .safetensors path")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    add_host_to_path(args.comfyui)
    from comfy.cli_args import args as host_args
    host_args.cpu = True
    import safetensors.torch
    t0 = time.time()
    sd = build_state_dict(args.seed)
    tmp = args.out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    safetensors.torch.save_file(sd, tmp, metadata={"built_by": "comfyui-safety-dual-latent", "seed": str(args.seed)})
    os.replace(tmp, args.out)  # atomic: a half-written file never looks finished
    n = sum(v.numel() for v in sd.values())
    print(f"[setup]   {len(sd)} tensors, {n / 1e6:.1f} M parameters, "
          f"{os.path.getsize(args.out) / 2**20:.0f} MiB, {time.time() - t0:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
