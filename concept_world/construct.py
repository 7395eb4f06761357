"""Text encoder and VAE weights for the concept world, set inside the host's own modules.

Needs the host on sys.path with `comfy.cli_args.args.cpu = True` set before `comfy.*` is
imported (build.py does this). The modules come from scripts/build_tiny_checkpoint.py.

Text encoder (CLIP-L shapes, fixed by the host), built so that meaning is shared and spread:
- token embeddings: a world word (vocab.WORD_FEATURES) is a weighted sum of shared feature
  directions (red, dark, liquid, violence, ...) plus a smaller word-specific part, scaled to
  the size of the other tokens' N(0, 1) embeddings; so "blood" shares directions with "red",
  "paint" and "wine" as it would in a real CLIP. Position embeddings are N(0, POS_STD).
- layer 0 mixes context: its attention has zero query/key projections (so every token attends
  uniformly to itself and the tokens before it, through the host's causal mask) and identity
  value projection, its output projection MIX * identity: token i becomes
  x_i + MIX * mean_{j <= i} LN(x_j). Later words and the end token (the pooled output) carry
  the words before them. Its MLP and every later layer's residual branches are zero.
- the output is final_layer_norm of that (computed in closed form by build.encode_captions,
  checked against the host's own encoder).

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

import torch

from . import latent

POS_STD = 0.1
K = 1000.0
SHARED = 0.85         # share of a world word's embedding norm carried by its features
MIX = 0.8             # strength of layer 0's context mixing


def world_token_features(tokenizer=None):
    """{token id: {feature: weight}} for every token of the world's vocabulary, from the host's
    own CLIP tokenizer (a word split into several tokens gives each piece its features)."""
    if tokenizer is None:
        import comfy.sd1_clip
        tokenizer = comfy.sd1_clip.SDTokenizer()
    from .vocab import WORD_FEATURES
    out = {}
    for word, feats in WORD_FEATURES.items():
        ids = tokenizer.tokenizer(word)["input_ids"][1:-1]
        for i in ids:
            merged = dict(out.get(i, {}))
            for f, v in feats.items():
                merged[f] = max(merged.get(f, 0.0), v)
            out[i] = merged
    return out


def semantic_embeddings_(weight, token_features, generator):
    """Overwrite the rows of world tokens with shared features + a word-specific part."""
    from .vocab import FEATURES
    d = weight.shape[1]
    directions = torch.randn(len(FEATURES), d, generator=generator)
    directions = directions / directions.norm(dim=1, keepdim=True)
    for tok in sorted(token_features):
        feats = token_features[tok]
        own = weight[tok] / weight[tok].norm()
        if not feats:
            continue
        shared = sum(v * directions[FEATURES.index(f)] for f, v in feats.items())
        shared = shared / shared.norm()
        row = SHARED * shared + math.sqrt(1 - SHARED ** 2) * own
        weight[tok] = row / row.norm() * math.sqrt(d)


@torch.no_grad()
def construct_clip_(clip, seed=0, token_features=None):
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
    params = dict(clip.named_parameters())
    emb = next(p for n, p in params.items() if n.endswith("token_embedding.weight"))
    fg = torch.Generator().manual_seed(seed + 1)
    semantic_embeddings_(emb, world_token_features() if token_features is None else token_features, fg)
    attn = {n.split("layers.0.self_attn.")[1]: p for n, p in params.items() if ".layers.0.self_attn." in n}
    attn["q_proj.weight"].zero_()
    attn["k_proj.weight"].zero_()
    attn["v_proj.weight"].copy_(torch.eye(emb.shape[1]))
    attn["out_proj.weight"].copy_(MIX * torch.eye(emb.shape[1]))


def closed_form_encode(ids, tok, pos, ln_w, ln_b, ln1_w, ln1_b, final_norm=True):
    """What the constructed encoder computes for token ids (L,): final_layer_norm of
    x + MIX * causal mean of layer_norm1(x), x = token + position embeddings (without the final
    norm: the hidden state of any later layer, which the SD3 text path reads)."""
    d = tok.shape[1]
    x = tok[ids] + pos
    h = torch.nn.functional.layer_norm(x, (d,), ln1_w, ln1_b, eps=1e-5)
    counts = torch.arange(1, x.shape[0] + 1, dtype=x.dtype).unsqueeze(1)
    x = x + MIX * h.cumsum(0) / counts
    return torch.nn.functional.layer_norm(x, (d,), ln_w, ln_b, eps=1e-5) if final_norm else x


def _eye_center(w, n=None):
    """Conv weight (out, in, kh, kw) -> identity through its centre tap on min(out, in) channels."""
    n = n or min(w.shape[0], w.shape[1])
    idx = torch.arange(n)
    if w.shape[-1] == 1:
        w[idx, idx, 0, 0] = 1.0
    else:
        w[idx, idx, w.shape[-2] // 2, w.shape[-1] // 2] = 1.0


@torch.no_grad()
def construct_vae_(vae, space=latent.SD15):
    """vae: the host's AutoencodingEngine (SD config with space.channels latent channels, no quant
    convs). Sets every parameter."""
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
    s, shift, C = space.scale, space.shift, space.channels

    # decoder: raw (C) -> carriers at 4j..4j+3 = (x_j, -x_j, K, -K), x = P @ (s * (raw[:4] - shift))
    dec = vae.decoder
    for j in range(3):
        offset = -s * shift * float(Pt[j].sum())
        dec.conv_in.weight[4 * j, :4, 1, 1] = Pt[j] * s
        dec.conv_in.weight[4 * j + 1, :4, 1, 1] = -Pt[j] * s
        if shift:
            dec.conv_in.bias[4 * j] = offset
            dec.conv_in.bias[4 * j + 1] = -offset
        dec.conv_in.bias[4 * j + 2] = K
        dec.conv_in.bias[4 * j + 3] = -K
        gs = dec.norm_out.num_channels // dec.norm_out.num_groups   # 4 at 128 channels
        assert gs == 4
        dec.norm_out.weight[4 * j:4 * j + 2] = K * math.sqrt(2.0 / gs)
        dec.conv_out.weight[j, 4 * j, 1, 1] = 1.0
        dec.conv_out.weight[j, 4 * j + 1, 1, 1] = -1.0
    # encoder: x (3) -> carriers at 16j.. = (x_j, -x_j, K, -K); raw = (M @ x) / s + shift
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
    if shift:
        enc.conv_out.bias[:C] = shift
    enc.conv_out.bias[C:] = -20.0  # log-variance: the regulariser takes the mode anyway
