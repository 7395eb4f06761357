"""Text encoder and VAE weights for the concept world, set inside the host's own modules.

Needs the host on sys.path with `comfy.cli_args.args.cpu = True` set before `comfy.*` is
imported (build.py does this). The modules come from scripts/build_tiny_checkpoint.py.

Text encoder (CLIP-L shapes, fixed by the host): every residual branch (attention out_proj,
MLP fc2) is zero, so each layer is the identity and the output is
final_layer_norm(token_embedding + position_embedding). Token embeddings are N(0, 1)
(nearly orthogonal between words), position embeddings N(0, POS_STD): the output keeps
token identity, so captions that share words share directions.

VAE (the host's fixed SD config): every ResnetBlock's conv2 and the attention proj_out are
zero, so each block passes its input through (1x1 shortcuts carry channels unchanged);
up-sampling convs are the identity (nearest up-sampling), down-sampling convs average 2x2.
The signal is carried as channel pairs (x, -x) next to constant channels (K, -K) in the
same group, so the final GroupNorm divides by ~K/sqrt(2) (restored by its affine weight)
and swish(x) - swish(-x) = x undoes the final nonlinearity exactly. Result:
decode(raw) = latent.raw_to_image(raw), encode(image) = latent.image_to_raw(image)
(up to float rounding; see tests/test_concept_world.py).
"""
import math

import numpy as np
import torch

from . import latent

POS_STD = 0.1
K = 1000.0


@torch.no_grad()
def construct_clip_(clip, seed=0):
    g = torch.Generator().manual_seed(seed)
    for name, p in clip.named_parameters():
        if name.endswith("token_embedding.weight"):
            p.normal_(0.0, 1.0, generator=g)
        elif name.endswith("position_embedding.weight"):
            p.normal_(0.0, POS_STD, generator=g)
        elif "out_proj" in name or "fc2" in name:
            p.zero_()
        elif name.endswith("bias"):
            p.zero_()
        elif p.ndim <= 1:
            p.fill_(1.0)  # layer norm weights (and logit scale, unused)
        elif "text_projection" in name:
            p.copy_(torch.eye(*p.shape))
        else:
            p.normal_(0.0, 1.0 / math.sqrt(p.shape[1]), generator=g)


def _eye_center(w, n=None):
    """Conv weight (out, in, kh, kw) -> identity through its centre tap on min(out, in) channels."""
    n = n or min(w.shape[0], w.shape[1])
    idx = torch.arange(n)
    if w.shape[-1] == 1:
        w[idx, idx, 0, 0] = 1.0
    else:
        w[idx, idx, w.shape[-2] // 2, w.shape[-1] // 2] = 1.0


@torch.no_grad()
def construct_vae_(vae):
    """vae: the host's AutoencodingEngine (SD config, no quant convs). Sets every parameter."""
    for name, p in vae.named_parameters():
        p.zero_()
        if p.ndim == 1 and ("norm" in name) and name.endswith("weight"):
            p.fill_(1.0)
    for name, m in vae.named_modules():
        if name.endswith("nin_shortcut"):
            _eye_center(m.weight)
        elif name.endswith("upsample.conv"):
            _eye_center(m.weight)
        elif name.endswith("downsample.conv"):
            idx = torch.arange(m.weight.shape[0])
            for dy in (0, 1):
                for dx in (0, 1):
                    m.weight[idx, idx, dy, dx] = 0.25
    Mt = torch.tensor(latent.M, dtype=torch.float32)       # (4, 3): z = M @ x
    Pt = torch.tensor(latent.P, dtype=torch.float32)       # (3, 4): x = P @ z
    s = latent.SCALE

    # decoder: raw (4) -> carriers at 4j..4j+3 = (x_j, -x_j, K, -K), x = P @ (s * raw)
    dec = vae.decoder
    for j in range(3):
        dec.conv_in.weight[4 * j, :, 1, 1] = Pt[j] * s
        dec.conv_in.weight[4 * j + 1, :, 1, 1] = -Pt[j] * s
        dec.conv_in.bias[4 * j + 2] = K
        dec.conv_in.bias[4 * j + 3] = -K
        gs = dec.norm_out.num_channels // dec.norm_out.num_groups   # 4 at 128 channels
        assert gs == 4
        dec.norm_out.weight[4 * j:4 * j + 2] = K * math.sqrt(2.0 / gs)
        dec.conv_out.weight[j, 4 * j, 1, 1] = 1.0
        dec.conv_out.weight[j, 4 * j + 1, 1, 1] = -1.0
    # encoder: x (3) -> carriers at 16j.. = (x_j, -x_j, K, -K); raw = (M @ x) / s
    enc = vae.encoder
    gs = enc.norm_out.num_channels // enc.norm_out.num_groups       # 16 at 512 channels
    assert gs == 16
    for j in range(3):
        enc.conv_in.weight[16 * j, j, 1, 1] = 1.0
        enc.conv_in.weight[16 * j + 1, j, 1, 1] = -1.0
        enc.conv_in.bias[16 * j + 2] = K
        enc.conv_in.bias[16 * j + 3] = -K
        enc.norm_out.weight[16 * j:16 * j + 2] = K * math.sqrt(2.0 / gs)
        for i in range(4):
            enc.conv_out.weight[i, 16 * j, 1, 1] = Mt[i, j] / s
            enc.conv_out.weight[i, 16 * j + 1, 1, 1] = -Mt[i, j] / s
    enc.conv_out.bias[4:] = -20.0  # log-variance: the regulariser takes the mode anyway
