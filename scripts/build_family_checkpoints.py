"""Build tiny seeded diffusion models of every model family the tests cover.

Each model is built with the host's own classes: the family's config goes through the host's
`model_config_from_unet_config` (the same registry its loaders use), `get_model()` builds the
diffusion model, every parameter AND every floating buffer (SD3's `pos_embed` is one) gets
seeded random values, and the state dict is saved in the UNETLoader file layout. Then the
host's own `load_diffusion_model` reads the file back: it must detect the same family and
hold every tensor bit for bit, or the build fails.

Sizes are the smallest the host's detector accepts; Flux and Qwen-Image have fixed widths
(24 heads x 128, 3072 hidden) and stay large.

Usage: python build_family_checkpoints.py --comfyui PATH --out DIR [--family NAME ...] [--seed N]
       [--text-encoders DIR] [--models DIR]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_tiny_checkpoint import add_host_to_path, init_weights_  # noqa: E402

# name -> (config for the host's model registry, the host's supported-model class name)
FAMILIES = {
    "sdxl": (dict(model_channels=320, use_linear_in_transformer=True, transformer_depth=[0, 0, 1, 1, 2, 2],
                  context_dim=2048, adm_in_channels=2816, use_temporal_attention=False, in_channels=4,
                  out_channels=4, num_res_blocks=[2, 2, 2], channel_mult=[1, 1, 1], transformer_depth_middle=1,
                  transformer_depth_output=[0, 0, 0, 1, 1, 1, 2, 2, 2], num_head_channels=64,
                  use_spatial_transformer=True, legacy=False, num_classes="sequential", image_size=32,
                  use_checkpoint=False), "Segmind_Vega"),
    "sd3": (dict(in_channels=16, out_channels=16, patch_size=2, depth=2, adm_in_channels=2048,
                 context_embedder_config={"target": "torch.nn.Linear",
                                          "params": {"in_features": 4096, "out_features": 128}},
                 num_patches=1024, pos_embed_max_size=32, pos_embed_scaling_factor=None, input_size=None,
                 x_block_self_attn_layers=[]), "SD3"),
    "flux_dev": (dict(image_model="flux", in_channels=16, out_channels=16, vec_in_dim=2048, context_in_dim=4096,
                      hidden_size=3072, mlp_ratio=4.0, num_heads=24, depth=1, depth_single_blocks=0,
                      axes_dim=[16, 56, 56], theta=10000, qkv_bias=True, guidance_embed=True, patch_size=2),
                 "Flux"),
    "qwen_image": (dict(image_model="qwen_image", in_channels=64, num_layers=1), "QwenImage"),
    "wan21_t2v": (dict(image_model="wan2.1", model_type="t2v", dim=128, out_dim=16, num_heads=1, ffn_dim=256,
                       num_layers=1, in_dim=16, patch_size=(1, 2, 2), freq_dim=256, window_size=(-1, -1),
                       qk_norm=True, cross_attn_norm=True, eps=1e-6), "WAN21_T2V"),
    "wan21_i2v": (dict(image_model="wan2.1", model_type="i2v", dim=128, out_dim=16, num_heads=1, ffn_dim=256,
                       num_layers=1, in_dim=36, patch_size=(1, 2, 2), freq_dim=256, window_size=(-1, -1),
                       qk_norm=True, cross_attn_norm=True, eps=1e-6), "WAN21_I2V"),
    "wan22_5b": (dict(image_model="wan2.1", model_type="t2v", dim=128, out_dim=48, num_heads=1, ffn_dim=256,
                      num_layers=1, in_dim=48, patch_size=(1, 2, 2), freq_dim=256, window_size=(-1, -1),
                      qk_norm=True, cross_attn_norm=True, eps=1e-6), "WAN22_T2V"),
    "hunyuan_video": (dict(image_model="hunyuan_video", in_channels=16, out_channels=16, patch_size=[1, 2, 2],
                           vec_in_dim=768, axes_dim=[16, 56, 56], meanflow=False, context_in_dim=4096,
                           hidden_size=128, mlp_ratio=4.0, num_heads=1, depth=1, depth_single_blocks=1, theta=256,
                           qkv_bias=True, byt5=False, guidance_embed=True, use_cond_type_embedding=False,
                           vision_in_dim=None), "HunyuanVideo"),
    "ltxv": (dict(image_model="ltxv", num_layers=1, attention_head_dim=2, cross_attention_dim=64), "LTXV"),
}

# The families over ~100 M parameters (fixed widths): a separate, slower test group.
LARGE = ("flux_dev", "qwen_image")


# Real Flux takes CLIP-L's 768-wide pooled vector; the tiny one takes 2048, what the host's
# SD3 text path gives for CLIP-L alone (768 + CLIP-G's 1280 zeros), the text encoder the
# browser test runs flux_safe_txt2img.json with (T5-XXL is 4.8 B parameters). A family whose
# tiny config changed gets a new file name, so an older cached build is never reused.
REVISIONS = {"flux_dev": "pooled2048"}


def file_name(family):
    rev = f"-{REVISIONS[family]}" if family in REVISIONS else ""
    return f"tiny-{family.replace('_', '-')}{rev}-random.safetensors"


def init_buffers_(module, generator):
    """Floating buffers saved in the state dict get N(0, 0.02) (left alone they may be garbage)."""
    import torch
    saved = set(module.state_dict().keys())
    for name, b in module.named_buffers():
        if name in saved and b.is_floating_point():
            with torch.no_grad():
                b.normal_(0.0, 0.02, generator=generator)


def build_state_dict(family, seed=0):
    import torch
    import comfy.model_detection
    config, expected = FAMILIES[family]
    model_config = comfy.model_detection.model_config_from_unet_config(dict(config))
    if model_config is None or type(model_config).__name__ != expected:
        raise RuntimeError(f"{family}: the host's registry gave {type(model_config).__name__}, expected {expected}")
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({}).diffusion_model
    g = torch.Generator().manual_seed(seed)
    init_weights_(model, g)
    init_buffers_(model, g)
    return {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}


def check_with_host_loader(family, path, sd):
    """The host's own loader must detect the family and hold every tensor as saved."""
    import torch
    import comfy.sd
    patcher = comfy.sd.load_diffusion_model(path, model_options={"dtype": torch.float16})
    expected = FAMILIES[family][1]
    got = type(patcher.model.model_config).__name__
    if got != expected:
        raise RuntimeError(f"{family}: the host detected {got}, expected {expected}")
    loaded = patcher.model.diffusion_model.state_dict()
    if set(loaded) != set(sd):
        raise RuntimeError(f"{family}: loaded keys differ: {sorted(set(loaded) ^ set(sd))[:5]}")
    bad = [k for k in sd if not torch.equal(loaded[k].to(sd[k].dtype), sd[k])]
    if bad:
        raise RuntimeError(f"{family}: {len(bad)} tensors differ after loading, e.g. {bad[:3]}")


def build(family, out_dir, seed=0):
    import safetensors.torch
    t0 = time.time()
    sd = build_state_dict(family, seed)
    path = os.path.join(out_dir, file_name(family))
    os.makedirs(out_dir, exist_ok=True)
    tmp = path[:-len(".safetensors")] + ".partial.safetensors"
    safetensors.torch.save_file(sd, tmp, metadata={"built_by": "comfyui-safety-dual-latent", "seed": str(seed),
                                                   "family": family})
    check_with_host_loader(family, tmp, sd)
    os.replace(tmp, path)  # atomic: a half-written or unchecked file never looks finished
    n = sum(v.numel() for v in sd.values())
    return dict(family=family, params=n, mib=os.path.getsize(path) / 2**20, seconds=time.time() - t0, path=path)


# A text encoder without a pooled output, small enough to build: T5-base (the host's Stable
# Audio text encoder, fixed config, ~110 M parameters), for the prompt gate's tests.
T5_BASE_FILE = "tiny-t5-base-random.safetensors"


def build_t5_base(out_dir, seed=0):
    """Seeded T5-base encoder weights in the file layout the host's CLIPLoader reads, checked by it."""
    import torch
    import safetensors.torch
    import comfy.sd
    import comfy.text_encoders.sa_t5
    t0 = time.time()
    model = comfy.text_encoders.sa_t5.SAT5Model(device="cpu", dtype=torch.float32)
    transformer = model.t5base.transformer
    g = torch.Generator().manual_seed(seed)
    init_weights_(transformer, g)
    init_buffers_(transformer, g)
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in transformer.state_dict().items()}
    path = os.path.join(out_dir, T5_BASE_FILE)
    os.makedirs(out_dir, exist_ok=True)
    tmp = path[:-len(".safetensors")] + ".partial.safetensors"
    safetensors.torch.save_file(sd, tmp, metadata={"built_by": "comfyui-safety-dual-latent", "seed": str(seed)})
    clip = comfy.sd.load_clip([tmp], clip_type=comfy.sd.CLIPType.STABLE_AUDIO)
    loaded = clip.cond_stage_model.t5base.transformer.state_dict()
    bad = [k for k in sd if k not in loaded or not torch.equal(loaded[k].to(sd[k].dtype), sd[k])]
    if bad:
        raise RuntimeError(f"t5_base: {len(bad)} tensors differ after the host's CLIP loader, e.g. {bad[:3]}")
    os.replace(tmp, path)
    n = sum(v.numel() for v in sd.values())
    return dict(family="t5_base", params=n, mib=os.path.getsize(path) / 2**20, seconds=time.time() - t0, path=path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", required=True, help="ComfyUI folder (the host)")
    ap.add_argument("--out", required=True, help="output folder (the host's models/diffusion_models)")
    ap.add_argument("--family", action="append", choices=sorted(FAMILIES), help="default: all missing ones")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--text-encoders", help="also build the T5-base text encoder into this folder if missing")
    ap.add_argument("--models", help="also build the workflows' text encoders and VAEs (build_family_encoders.py) "
                                     "under this models folder, the missing ones")
    args = ap.parse_args()
    add_host_to_path(args.comfyui)
    from comfy.cli_args import args as host_args
    host_args.cpu = True
    for family in args.family or list(FAMILIES):
        if not args.family and os.path.exists(os.path.join(args.out, file_name(family))):
            continue
        r = build(family, args.out, args.seed)
        report(r)
    if args.text_encoders and not os.path.exists(os.path.join(args.text_encoders, T5_BASE_FILE)):
        report(build_t5_base(args.text_encoders, args.seed))
    if args.models:
        from build_family_encoders import build_encoder, missing
        for name in missing(args.models):
            report(build_encoder(name, args.models, args.seed))


def report(r):
    print(f"[setup]   {r['family']}: {r['params'] / 1e6:.2f} M parameters, {r['mib']:.1f} MiB, "
          f"{r['seconds']:.1f} s -> {r['path']}", flush=True)


if __name__ == "__main__":
    main()
