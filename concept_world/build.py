"""Build (or reuse) the concept world's checkpoint: construct, train, cache, link into the host.

    python -m concept_world.build [--comfyui PATH] [--steps N]     (or `make world`)

`ensure_world(comfyui_path)` returns the checkpoint path, training only when the cache has
no checkpoint for this exact configuration (a hash of CONFIG and the training code).
Cache: ${SAFETY_CACHE_DIR:-~/.cache/comfyui-safety-dual-latent}/concept_world/<hash>/.
The checkpoint is linked into the host's models/checkpoints/ as concept-world.safetensors,
so the stock CheckpointLoaderSimple loads it.
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path


PACK_DIR = Path(__file__).resolve().parents[1]
WORLD_SEEDS = (0, 1)   # independently trained worlds: same data and text encoder, other training seed

CONFIG = dict(
    seed=0, data_seed=0, n_train=12000, data_noise=0.02,
    steps=2400, batch=16, lr=8e-4, warmup=40, weight_decay=0.0, grad_clip=1.0,
    ema_decay=0.995, min_snr_gamma=5.0,
    cfg_dropout=0.1, clip_seed=0,
    beta_start=0.00085, beta_end=0.012, timesteps=1000,
)


def checkpoint_name(seed=0):
    """The name each trained world is linked under in the host's models/checkpoints/."""
    return f"concept-world-v2-s{seed}.safetensors"


CHECKPOINT_NAME = checkpoint_name(0)


def variant_name(seed=0, config=None):
    """The name a world is linked under: the protocol's name for the protocol's recipe, else
    one that carries its config hash (a variant such as `--steps 1200` never stands in for the
    protocol's world in the host's models/checkpoints/)."""
    if world_config(seed, config) == world_config(seed):
        return checkpoint_name(seed)
    return f"concept-world-v2-s{seed}-{config_hash(world_config(seed, config))}.safetensors"


def train_device():
    """SAFETY_WORLD_DEVICE, else CUDA when the machine has it, else the CPU."""
    import torch
    return os.environ.get("SAFETY_WORLD_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


def unet_checksum(path):
    """sha256 (16 hex) of the UNet tensors of a checkpoint, in key order: tells whether two
    machines trained the same weights (metadata such as the training time is left out)."""
    import safetensors
    h = hashlib.sha256()
    with safetensors.safe_open(str(path), "np") as f:
        for k in sorted(f.keys()):
            if k.startswith("model.diffusion_model."):
                h.update(k.encode())
                h.update(f.get_tensor(k).tobytes())
    return h.hexdigest()[:16]
# what defines the trained weights (a change retrains): these files and the training functions
_HASHED = ["scenes.py", "latent.py", "construct.py"]
_HASHED_FUNCS = ["init_unet_", "build_untrained", "save_checkpoint", "encode_captions", "train", "lr_at",
                 "optimiser_step_"]


def cache_root():
    base = os.environ.get("SAFETY_CACHE_DIR") or os.path.expanduser("~/.cache/comfyui-safety-dual-latent")
    return Path(base) / "concept_world"


def config_hash(config):
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name in _HASHED:
        h.update((Path(__file__).parent / name).read_bytes())
    import inspect
    for name in _HASHED_FUNCS:
        h.update(inspect.getsource(globals()[name]).encode())
    return h.hexdigest()[:16]


def default_comfyui_path():
    sys.path.insert(0, str(PACK_DIR / "scripts"))
    from comfy_host import comfyui_path
    return comfyui_path()


def setup_host(comfyui):
    comfyui = str(Path(comfyui).resolve())
    if comfyui not in sys.path:
        sys.path.insert(0, comfyui)
    scripts = str(PACK_DIR / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    from comfy.cli_args import args
    args.cpu = True


def init_unet_(unet, seed):
    """Standard init (torch defaults; output convs of residual branches zero, as in SD)."""
    import torch
    torch.manual_seed(seed)
    for name, m in unet.named_modules():
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.Conv1d, torch.nn.Conv3d)):
            base = next(c for c in type(m).__mro__ if c.__module__.startswith("torch.nn.modules"))
            base.reset_parameters(m)  # the host's ops skip init on purpose; we want torch's
        elif isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
    with torch.no_grad():
        for name, p in unet.named_parameters():
            if (".out_layers.3." in name or ".proj_out." in name or name.startswith("out.2.")):
                p.zero_()
    for name, p in unet.named_parameters():
        assert torch.isfinite(p).all(), name


def build_untrained(seed=0, clip_seed=0):
    """Host modules with the world's constructed text encoder and VAE and an initialised UNet."""
    import build_tiny_checkpoint as btc
    from . import construct
    unet, clip, vae = btc.build_modules()
    construct.construct_clip_(clip, clip_seed)
    construct.construct_vae_(vae)
    init_unet_(unet, seed)
    return unet, clip, vae


def save_checkpoint(unet, clip, vae, path, dtype=None, metadata=None):
    import torch
    import safetensors.torch
    import build_tiny_checkpoint as btc
    sd = btc.checkpoint_state_dict(unet, clip, vae, dtype or torch.float16)
    tmp = str(path) + ".tmp"
    safetensors.torch.save_file(sd, tmp, metadata=metadata or {})
    os.replace(tmp, path)


def encode_captions(ckpt_path, captions, verify=6, log=print):
    """Captions -> (n, 77, 768) conditioning.

    The host's own tokenizer gives the token ids; the world's constructed text encoder is a
    closed form (construct.closed_form_encode: one context-mixing layer, every other residual
    branch zero), computed here directly from the checkpoint's weights, because the full
    CLIP-L forward costs about a second per caption on two cores. The first `verify` captions
    (and the empty one) are also run through the host's own encoder (the calls CLIPTextEncode
    makes) and must agree: the closed form is checked, not assumed.
    """
    import torch
    import comfy.sd
    import safetensors.torch
    from .construct import closed_form_encode
    _, clip, _, _ = comfy.sd.load_checkpoint_guess_config(str(ckpt_path), output_vae=False, output_model=False)
    pre = "cond_stage_model.transformer.text_model."
    names = ["embeddings.token_embedding.weight", "embeddings.position_embedding.weight", "final_layer_norm.weight",
             "final_layer_norm.bias", "encoder.layers.0.layer_norm1.weight", "encoder.layers.0.layer_norm1.bias"]
    with safetensors.safe_open(str(ckpt_path), "pt") as f:
        weights = [f.get_tensor(pre + n).float() for n in names]
    out = []
    for text in captions:
        ids = torch.tensor([t for t, _ in clip.tokenize(text)["l"][0]])
        assert len(ids) == weights[1].shape[0], (text, len(ids))
        out.append(closed_form_encode(ids, *weights))
    out = torch.stack(out)
    n = verify_encoding(clip, captions, out, verify)
    log(f"[world] closed-form text encoding matches the host's CLIPTextEncode path on {n} captions")
    return out


def verify_encoding(clip, captions, closed, verify, relative=False):
    """Run the first `verify` captions (and the empty one) through the host's own encoder (the
    calls CLIPTextEncode makes) and raise where the closed form `closed` differs by more than 0.02
    (times the output's scale with `relative`); returns how many were checked."""
    check = list(range(min(verify, len(captions))))
    check += [i for i, c in enumerate(captions) if c == "" and i not in check]
    for i in check:
        ref = clip.encode_from_tokens(clip.tokenize(captions[i]))[0].float()
        err = (ref - closed[i]).abs().max().item()
        if err > 2e-2 * (max(1.0, ref.abs().max().item()) if relative else 1.0):
            raise RuntimeError(f"closed-form text encoding differs from the host's by {err} on {captions[i]!r}")
    return len(check)


def lr_at(config, step, steps):
    """The learning rate at `step`: linear warmup, then cosine decay to 10 % of the peak."""
    return config["lr"] * min(1.0, (step + 1) / config["warmup"]) * (0.5 * (1 + math.cos(math.pi * step / steps)) * 0.9 + 0.1)


def optimiser_step_(model, opt, loss, ema, step, config):
    """One training step: backward, gradient clipping, the optimiser, then the exponential moving
    average of the weights that is sampled from (on a short run it gives much cleaner samples
    than the last iterate; its decay warms up so early steps count less)."""
    import torch
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config["grad_clip"])
    opt.step()
    with torch.no_grad():
        d = min(config["ema_decay"], (1 + step) / (10 + step))
        torch._foreach_lerp_(ema, [p.detach() for p in model.parameters()], 1.0 - d)


def train(config, workdir, log=print):
    """Train the UNet; returns (checkpoint path, training seconds)."""
    import torch
    from . import scenes, latent
    torch.manual_seed(config["seed"])
    # one thread by default: on a shared 2-core machine two threads were 2x slower (spinning)
    torch.set_num_threads(int(os.environ.get("SAFETY_WORLD_THREADS", "1")))
    dev = torch.device(train_device())
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    unet, clip, vae = build_untrained(config["seed"], config["clip_seed"])
    init_path = workdir / "untrained.safetensors"
    save_checkpoint(unet, clip, vae, init_path)
    data = scenes.make_dataset(config["n_train"], config["data_seed"], config["data_noise"])
    caps = sorted(set(data["captions"]))
    t0 = time.time()
    emb = encode_captions(init_path, caps + [""], log=log)
    empty = emb[-1]
    emb = emb[:-1]
    log(f"[world] {len(caps)} distinct captions encoded by the host in {time.time() - t0:.1f} s")
    where = {c: i for i, c in enumerate(caps)}
    cap_idx = torch.tensor([where[c] for c in data["captions"]])
    x0_all = torch.tensor(latent.cells_to_scaled(data["cells"]))
    betas = torch.linspace(config["beta_start"] ** 0.5, config["beta_end"] ** 0.5, config["timesteps"],
                           dtype=torch.float64) ** 2
    abar = torch.cumprod(1.0 - betas, 0).float()
    del clip, vae
    emb, empty, x0_all, abar = (v.to(dev) for v in (emb, empty, x0_all, abar))
    unet.to(dev)
    unet.train()
    opt = torch.optim.AdamW(unet.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    g = torch.Generator().manual_seed(config["seed"] + 1)
    steps, bs = config["steps"], config["batch"]
    t0 = time.time()
    loss_avg = None
    ema_params = [p.detach().clone() for p in unet.parameters()]
    for step in range(steps):
        lr = lr_at(config, step, steps)
        for grp in opt.param_groups:
            grp["lr"] = lr
        # the draws come from a CPU generator whatever the device: the same data order everywhere
        idx = torch.randint(0, len(x0_all), (bs,), generator=g)
        x0 = x0_all[idx.to(dev)]
        t = torch.randint(0, config["timesteps"], (bs,), generator=g).to(dev)
        eps = torch.randn(x0.shape, generator=g).to(dev)
        a = abar[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        ctx = emb[cap_idx[idx].to(dev)].clone()
        drop = (torch.rand(bs, generator=g) < config["cfg_dropout"]).to(dev)
        ctx[drop] = empty
        pred = unet(xt, timesteps=t.float(), context=ctx)
        # Min-SNR-gamma weighting (Hang et al. 2023): eps-loss weight min(SNR, gamma) / SNR, so
        # the nearly clean timesteps (easy, and irrelevant to the layout) stop dominating
        snr = abar[t] / (1.0 - abar[t])
        weight = snr.clamp(max=config["min_snr_gamma"]) / snr
        loss = (weight * (pred - eps).pow(2).mean(dim=(1, 2, 3))).mean()
        optimiser_step_(unet, opt, loss, ema_params, step, config)
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            el = time.time() - t0
            log(f"[world] step {step + 1}/{steps} loss {loss_avg:.4f} lr {lr:.2e} "
                f"{el:.0f} s ({el / (step + 1):.2f} s/step)")
    train_s = time.time() - t0
    with torch.no_grad():
        for p, e in zip(unet.parameters(), ema_params):
            p.copy_(e)
    unet.eval()
    unet.cpu()
    _, clip, vae = build_untrained(config["seed"], config["clip_seed"])
    path = workdir / "world.safetensors"
    save_checkpoint(unet, clip, vae, path, metadata={
        "built_by": "comfyui-safety-dual-latent concept_world v2", "config": json.dumps(config),
        "train_seconds": f"{train_s:.1f}", "device": str(dev)})
    init_path.unlink()
    (workdir / "info.json").write_text(json.dumps({
        "config": config, "train_seconds": train_s, "s_per_step": train_s / steps, "device": str(dev),
        "threads": torch.get_num_threads(), "distinct_captions": len(caps), "final_loss": loss_avg,
        "unet_sha256_16": unet_checksum(path)}, indent=1))
    return path, train_s


def link(path, comfyui, name):
    """A symlink models/checkpoints/<name> -> path in the host (the stock loader finds it)."""
    dest = Path(comfyui) / "models" / "checkpoints" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not (dest.is_symlink() and os.readlink(dest) == str(path)):
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        os.symlink(path, dest)
    return dest


def world_config(seed=0, config=None):
    return dict(CONFIG, **(config or {}), seed=seed)


def ensure_world(comfyui_path=None, seed=0, config=None, log=print, name=None):
    """The trained world's checkpoint path for training seed `seed` (training first if the
    cache lacks it); also linked into the host's models/checkpoints/ as `name`, by default
    checkpoint_name(seed) (a world of another config takes its own name, so it never stands in
    for the protocol's world)."""
    comfyui_path = Path(comfyui_path or default_comfyui_path())
    config = world_config(seed, config)
    workdir = cache_root() / config_hash(config)
    path = workdir / "world.safetensors"
    if not path.exists():
        setup_host(comfyui_path)
        log(f"[world] training concept world seed {seed} into {workdir} (config {config})")
        train(config, workdir, log=log)
    link(path, comfyui_path, name or checkpoint_name(seed))
    return path


def ensure_untrained(comfyui_path=None, name="concept-world-untrained.safetensors"):
    """The world's checkpoint before training (constructed text encoder and VAE, initialised
    UNet), cached and linked into the host as `name`: for fast tests of the loading path."""
    comfyui_path = Path(comfyui_path or default_comfyui_path())
    config = dict(CONFIG)
    path = cache_root() / ("untrained-" + config_hash(config) + ".safetensors")
    if not path.exists():
        setup_host(comfyui_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_checkpoint(*build_untrained(config["seed"], config["clip_seed"]), path)
    link(path, comfyui_path, name)
    return name


def world_info(seed=0, config=None):
    p = cache_root() / config_hash(world_config(seed, config)) / "info.json"
    return json.loads(p.read_text()) if p.exists() else None


def main():
    ap = argparse.ArgumentParser(description="Build the concept world and check its gates.")
    ap.add_argument("--comfyui", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seeds", default=",".join(map(str, WORLD_SEEDS)), help="training seeds of the worlds")
    ap.add_argument("--no-gates", action="store_true")
    a = ap.parse_args()
    cfg = {"steps": a.steps} if a.steps else {}
    from . import detect
    acc = detect.heldout_accuracy()
    print(f"[world] detector on held-out renderings with ghosts: exact-set accuracy {acc['exact']:.4f}, "
          f"per-concept {acc['per_concept']:.4f}, ghost objects {acc['ghost_objects']:.4f} (n={acc['n']})")
    ok = True
    for seed in (int(x) for x in a.seeds.split(",")):
        t0 = time.time()
        name = variant_name(seed, cfg)
        path = ensure_world(a.comfyui, seed, cfg, name=name)
        info = world_info(seed, cfg)
        print(f"[world] seed {seed}: {path} (ready in {time.time() - t0:.1f} s; training took "
              f"{info['train_seconds']:.0f} s on {info['device']}, {info['config']['steps']} steps; "
              f"UNet sha256 {info['unet_sha256_16']})")
        if not a.no_gates:
            from . import gates
            ok = gates.report(seed, checkpoint=name)["passed"] and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
