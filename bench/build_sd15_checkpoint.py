"""Build a full-size SD1.5-shaped checkpoint with seeded random weights, for the GPU benchmark.

The same builder as the tiny test checkpoint (scripts/build_tiny_checkpoint.py: the host's own
classes, the same finite-by-construction init, every key present), with the UNet shape of real
SD1.5 (what the host's model detection lists as SD15): 320 channels, channel_mult (1, 2, 4, 4),
two res-blocks per level, transformer depth 1 on the first three levels and the middle block.
About 860 M UNet parameters; fp16 file about 2 GB. Random weights: timings and memory only.

Usage: python bench/build_sd15_checkpoint.py --comfyui PATH --out FILE [--seed N] [--device cuda]
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import build_tiny_checkpoint as tiny  # noqa: E402

SD15_UNET = dict(
    num_res_blocks=[2, 2, 2, 2], channel_mult=(1, 2, 4, 4),
    transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_middle=1,
    transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
)


def build_state_dict(seed=0, dtype=None, device="cpu"):
    import torch
    dtype = dtype or torch.float16
    g = torch.Generator(device=device).manual_seed(seed)
    unet, clip, vae = tiny.build_modules(unet_overrides=SD15_UNET)
    for m in (unet, clip, vae):
        m.to(device)  # initialising 1 G parameters is much faster on a GPU
        tiny.init_weights_(m, g)
    return tiny.checkpoint_state_dict(unet, clip, vae, dtype)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfyui", required=True, help="ComfyUI folder (the host)")
    ap.add_argument("--out", required=True, help="output .safetensors path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="where to initialise the weights (cpu or cuda)")
    args = ap.parse_args()
    tiny.add_host_to_path(args.comfyui)
    from comfy.cli_args import args as host_args
    host_args.cpu = args.device == "cpu"
    import safetensors.torch
    t0 = time.time()
    sd = {k: v.cpu() for k, v in build_state_dict(args.seed, device=args.device).items()}
    unet = sum(v.numel() for k, v in sd.items() if k.startswith("model.diffusion_model."))
    tmp = args.out + ".tmp"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    safetensors.torch.save_file(sd, tmp, metadata={"built_by": "comfyui-safety-dual-latent bench",
                                                   "seed": str(args.seed), "shape": "sd15-full"})
    os.replace(tmp, args.out)  # atomic: a half-written file never looks finished
    print(f"[bench]   SD1.5-shaped checkpoint: {unet / 1e6:.1f} M UNet parameters, "
          f"{os.path.getsize(args.out) / 2**20:.0f} MiB, {time.time() - t0:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
