"""The transformer world: the concept world's scenes on an SD3-format MMDiT (rectified flow).

Same scenes, constructed CLIP-L text encoder, detector and prompt lists as the SD1.5-format
world (build.py); another architecture, cheap enough to train and measure on two CPU cores.
The host loads it with its stock loaders: one checkpoint file with the MMDiT under
`model.diffusion_model.`, the constructed CLIP-L under `text_encoders.clip_l.` (the host's SD3
text path with CLIP-L alone: the penultimate hidden state, 768 wide, zero-padded to 4096) and a
constructed 16-channel VAE (latent.SD3) under `first_stage_model.`.

Why an SD3-format MMDiT (measured, ../shared/CONCEPT_WORLD.md and the README): per training step
it is 5-8x cheaper than the smallest SD1.5-format UNet the host accepts, it carries the text
through every block (joint attention), and the host's detection lets it be small (hidden = 64 x
depth). Patch size 1 on the 8x8 latent: one token per world cell. No pooled-vector embedder:
the text reaches the model only through the context tokens, so the editing baseline (UCE on the
context embedder, the one projection that reads the text) edits every path the text takes.

Only the MMDiT is trained. Its fp16 weights are small enough to ship (`worlds/`, with their
sha256); the text encoder and the VAE are constructed, so the full checkpoint is assembled on
each machine from the shipped file (or from a world trained into the cache).
"""
import functools
import hashlib
import json
import os
import time
from pathlib import Path

from . import build, latent

ARCH = "mmdit"
SHIPPED = Path(__file__).with_name("worlds")
WORLD_SEEDS = (0, 1, 2)
# the world the demo, the README pictures and the tests sample: a shipped world that passes its test gates
# (world 0 of the shift-1 recipe fails them, 0.875 / 0.860)
DEMO_SEED = 1
# shift: of the training noise levels (flow_batch); 1 = unshifted, chosen on dev gates (concept_world/README.md),
# while sampling keeps the host's SD3 shift 3. The first shipped recipe trained at 3.
CONFIG = dict(
    seed=0, data_seed=0, n_train=12000, data_noise=0.02, depth=2,
    steps=7000, batch=32, lr=1e-3, warmup=50, weight_decay=0.0, grad_clip=1.0,
    ema_decay=0.995, cfg_dropout=0.1, clip_seed=0, logit_mean=0.0, logit_std=1.0, shift=1.0,
)
CLIP_PREFIX = "text_encoders.clip_l.transformer."
_HASHED_FUNCS = ["build_mmdit", "init_mmdit_", "train", "flow_batch"]


def checkpoint_name(seed=0):
    """The name a transformer world is linked under in the host's models/checkpoints/."""
    return f"concept-world-mmdit-s{seed}.safetensors"


def world_config(seed=0, config=None):
    return {**CONFIG, **(config or {}), "seed": seed}


def config_hash(config):
    """What defines the trained weights: the recipe, the scene/latent/encoder code and the
    training functions (a change trains anew)."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for part in _code_parts():
        h.update(part)
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _code_parts():
    """The code config_hash covers, read once, when this module is imported (see its last lines):
    inspect reads a function's source from the file at each call, so a file edited while a run goes
    on would change the hash mid-run and send the run training anew."""
    import inspect
    import sys
    parts = [(Path(__file__).parent / name).read_bytes() for name in ("scenes.py", "latent.py", "construct.py")]
    parts += [inspect.getsource(getattr(sys.modules[__name__], name)).encode() for name in _HASHED_FUNCS]
    parts += [inspect.getsource(getattr(build, name)).encode()      # the training step shared with SD1.5
              for name in ("lr_at", "optimiser_step_")]
    return tuple(parts)


def training_threads():
    """The torch thread count training runs with (SAFETY_WORLD_THREADS, default 1)."""
    return int(os.environ.get("SAFETY_WORLD_THREADS", "1"))


def cache_dir(config):
    """Where a world of this recipe trains: the device and, on the CPU, the thread count are part
    of the key (they change the floats, so a world trained otherwise never stands in for it)."""
    dev = build.train_device()
    where = f"{dev}-t{training_threads()}" if dev == "cpu" else dev
    return build.cache_root() / "mmdit" / f"{config_hash(config)}-{where}"


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- the host modules ------------------------------------------------------------------------
def build_mmdit(depth):
    """The host's own SD3 MMDiT class at the world's shape (uninitialised)."""
    import torch
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper
    return OpenAISignatureMMDITWrapper(
        patch_size=2, in_channels=latent.SD3.channels, out_channels=latent.SD3.channels, depth=depth,
        context_embedder_config={"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 64 * depth}},
        num_patches=64, pos_embed_max_size=8, pos_embed_scaling_factor=None, input_size=None,
        x_block_self_attn_layers=[], dtype=torch.float32, device="cpu", operations=comfy.ops.disable_weight_init)


def init_mmdit_(model, seed):
    """DiT's initialisation: xavier linears, zero biases, N(0, 0.02) timestep MLP, adaLN
    modulation and the final projection zero (every block starts as the identity), fixed 2-D
    sin-cos positions."""
    import torch
    from comfy.ldm.modules.diffusionmodules.mmdit import get_2d_sincos_pos_embed
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                torch.nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, torch.nn.LayerNorm) and m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()
        for name, p in model.named_parameters():
            if name.startswith("t_embedder.mlp."):
                if p.ndim > 1:
                    p.normal_(0.0, 0.02)
            if "adaLN_modulation" in name or name.startswith("final_layer.linear"):
                p.zero_()
        pos = get_2d_sincos_pos_embed(model.hidden_size, 8)
        model.pos_embed.copy_(torch.from_numpy(pos).float().unsqueeze(0))
    for name, p in model.state_dict().items():
        assert torch.isfinite(p).all(), name


def build_clip_vae(clip_seed=0):
    """The constructed text encoder (the SD1.5 world's CLIP-L) and a 16-channel constructed VAE."""
    import torch
    import comfy.sd1_clip
    from comfy.ldm.models.autoencoder import AutoencodingEngine
    import build_tiny_checkpoint as btc
    from . import construct
    clip = comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)
    construct.construct_clip_(clip, clip_seed)
    cfg = dict(btc.SD_VAE, z_channels=latent.SD3.channels)
    vae = AutoencodingEngine(
        regularizer_config={'target': "comfy.ldm.models.autoencoder.DiagonalGaussianRegularizer"},
        encoder_config={'target': "comfy.ldm.modules.diffusionmodules.model.Encoder", 'params': cfg},
        decoder_config={'target': "comfy.ldm.modules.diffusionmodules.model.Decoder", 'params': cfg})
    construct.construct_vae_(vae, latent.SD3)
    return clip, vae


def assemble(mmdit_sd, clip, vae, path, metadata=None):
    """One SD3-layout checkpoint file (CheckpointLoaderSimple reads it) from the MMDiT's weights."""
    import torch
    import safetensors.torch
    sd = {"model.diffusion_model." + k: v for k, v in mmdit_sd.items()}
    for k, v in clip.state_dict().items():
        if k.startswith("transformer.") and "position_ids" not in k:
            sd[CLIP_PREFIX + k[len("transformer."):]] = v
    for k, v in vae.state_dict().items():
        sd["first_stage_model." + k] = v
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}
    tmp = str(path) + ".tmp"
    safetensors.torch.save_file(sd, tmp, metadata=metadata or {})
    os.replace(tmp, path)
    return path


def save_mmdit(model, path, metadata):
    """The trained part alone, fp16, in the host's diffusion-model layout (UNETLoader reads it too)."""
    import torch
    import safetensors.torch
    sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    tmp = str(path) + ".tmp"
    safetensors.torch.save_file(sd, tmp, metadata=metadata)
    os.replace(tmp, path)


# -- text ------------------------------------------------------------------------------------
def encode_captions(ckpt_path, captions, verify=6, log=print):
    """Captions -> (n, 77, 4096): what the host's SD3 text path gives for the constructed CLIP-L
    (its penultimate hidden state without the final norm, zero-padded), in closed form, checked
    against the host's own encoder on the first `verify` captions and the empty one."""
    import torch
    import comfy.sd
    import safetensors
    from .construct import closed_form_encode
    _, clip, _, _ = comfy.sd.load_checkpoint_guess_config(str(ckpt_path), output_vae=False, output_model=False)
    pre = CLIP_PREFIX + "text_model."
    names = ["embeddings.token_embedding.weight", "embeddings.position_embedding.weight",
             "encoder.layers.0.layer_norm1.weight", "encoder.layers.0.layer_norm1.bias"]
    with safetensors.safe_open(str(ckpt_path), "pt") as f:
        tok, pos, ln1_w, ln1_b = (f.get_tensor(pre + n).float() for n in names)
    out = []
    for text in captions:
        ids = torch.tensor([t for t, _ in clip.tokenize(text)["l"][0]])
        h = closed_form_encode(ids, tok, pos, None, None, ln1_w, ln1_b, final_norm=False)
        out.append(torch.nn.functional.pad(h, (0, 4096 - h.shape[-1])))
    out = torch.stack(out)
    n = build.verify_encoding(clip, captions, out, verify, relative=True)   # unnormalised: up to about 30
    log(f"[mmdit] closed-form text encoding matches the host's SD3 text path on {n} captions")
    return out


# -- training --------------------------------------------------------------------------------
def flow_batch(x0, eps, u, shift):
    """Rectified flow as the host samples it (ModelSamplingDiscreteFlow): sigma from a
    logit-normal draw u, shifted like the sampler's schedule; x_t = (1 - s) x0 + s eps; the model
    predicts v = eps - x0 and is fed timestep s * 1000."""
    import torch
    s = torch.sigmoid(u)
    s = shift * s / (1 + (shift - 1) * s)
    sv = s.view(-1, 1, 1, 1)
    return (1 - sv) * x0 + sv * eps, eps - x0, s * 1000.0


def train(config, workdir, log=print):
    """Train the MMDiT; returns (path of its fp16 weights, training seconds)."""
    import torch
    from . import scenes
    torch.manual_seed(config["seed"])
    torch.set_num_threads(training_threads())
    dev = torch.device(build.train_device())
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model = build_mmdit(config["depth"])
    init_mmdit_(model, config["seed"])
    clip, vae = build_clip_vae(config["clip_seed"])
    init_path = assemble(model.state_dict(), clip, vae, workdir / "untrained.safetensors")
    del clip, vae
    data = scenes.make_dataset(config["n_train"], config["data_seed"], config["data_noise"])
    caps = sorted(set(data["captions"]))
    t0 = time.time()
    emb = encode_captions(init_path, caps + [""], log=log)
    init_path.unlink()
    empty, emb = emb[-1], emb[:-1]
    log(f"[mmdit] {len(caps)} distinct captions encoded in {time.time() - t0:.1f} s")
    where = {c: i for i, c in enumerate(caps)}
    cap_idx = torch.tensor([where[c] for c in data["captions"]])
    x0_all = torch.tensor(latent.cells_to_scaled(data["cells"], latent.SD3))
    emb, empty, x0_all = (v.to(dev) for v in (emb, empty, x0_all))
    model.to(dev)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    g = torch.Generator().manual_seed(config["seed"] + 1)
    steps, bs = config["steps"], config["batch"]
    ema = [p.detach().clone() for p in model.parameters()]
    loss_avg, t0 = None, time.time()
    for step in range(steps):
        lr = build.lr_at(config, step, steps)
        for grp in opt.param_groups:
            grp["lr"] = lr
        # every draw from one CPU generator: the same data order on every device
        idx = torch.randint(0, len(x0_all), (bs,), generator=g)
        eps = torch.randn((bs,) + tuple(x0_all.shape[1:]), generator=g).to(dev)
        u = (torch.randn(bs, generator=g) * config["logit_std"] + config["logit_mean"]).to(dev)
        drop = (torch.rand(bs, generator=g) < config["cfg_dropout"]).to(dev)
        xt, target, timestep = flow_batch(x0_all[idx.to(dev)], eps, u, config["shift"])
        ctx = emb[cap_idx[idx].to(dev)].clone()
        ctx[drop] = empty
        loss = (model(xt, timestep, context=ctx) - target).pow(2).mean()
        build.optimiser_step_(model, opt, loss, ema, step, config)
        loss_avg = loss.item() if loss_avg is None else 0.95 * loss_avg + 0.05 * loss.item()
        if step % 100 == 0 or step == steps - 1:
            el = time.time() - t0
            log(f"[mmdit] step {step + 1}/{steps} loss {loss_avg:.4f} lr {lr:.2e} {el:.0f} s ({el / (step + 1):.3f} s/step)")
    train_s = time.time() - t0
    with torch.no_grad():
        for p, e in zip(model.parameters(), ema):
            p.copy_(e)
    model.cpu().eval()
    path = workdir / "mmdit.safetensors"
    save_mmdit(model, path, {"built_by": "comfyui-safety-dual-latent concept_world transformer",
                             "config": json.dumps(config, sort_keys=True)})
    (workdir / "info.json").write_text(json.dumps({
        "config": config, "config_hash": config_hash(config), "train_seconds": train_s, "s_per_step": train_s / steps,
        "device": str(dev), "threads": torch.get_num_threads(), "distinct_captions": len(caps),
        "final_loss": loss_avg, "sha256": file_sha256(path)}, indent=1))
    return path, train_s


# -- the world on a machine ------------------------------------------------------------------
def shipped(seed):
    """(weights path, info) of the world shipped in the repository for this seed, or None."""
    info = SHIPPED / f"mmdit-s{seed}.json"
    if not info.exists():
        return None
    meta = json.loads(info.read_text())
    return SHIPPED / meta["file"], meta


def mmdit_weights(seed=0, config=None, log=print, allow_shipped=True):
    """The MMDiT weights file of a world: the shipped one when the recipe is the shipped one
    (its sha256 checked), else trained into the cache (once)."""
    config = world_config(seed, config)
    ship = shipped(seed) if allow_shipped else None
    if ship and ship[1]["config"] == config:
        path, meta = ship
        digest = file_sha256(path)
        if digest != meta["sha256"]:
            raise RuntimeError(f"{path} has sha256 {digest}, expected {meta['sha256']} (a damaged or edited file)")
        return path
    workdir = cache_dir(config)
    path = workdir / "mmdit.safetensors"
    if not path.exists():
        log(f"[mmdit] training transformer world seed {seed} into {workdir}")
        train(config, workdir, log=log)
    return path


def ensure_world(comfyui_path=None, seed=0, config=None, log=print, name=None, allow_shipped=True):
    """The full checkpoint of a transformer world (assembled once per weights file, cached),
    linked into the host's models/checkpoints/ as `name` (default checkpoint_name(seed))."""
    import safetensors.torch
    comfyui_path = Path(comfyui_path or build.default_comfyui_path())
    build.setup_host(comfyui_path)
    config = world_config(seed, config)
    weights = mmdit_weights(seed, config, log, allow_shipped)
    digest = file_sha256(weights)
    out = build.cache_root() / "mmdit" / f"world-{digest[:16]}-clip{config['clip_seed']}.safetensors"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        clip, vae = build_clip_vae(config["clip_seed"])
        assemble(safetensors.torch.load_file(str(weights)), clip, vae, out,
                 metadata={"built_by": "comfyui-safety-dual-latent concept_world transformer",
                           "mmdit_sha256": digest})
    build.link(out, comfyui_path, name or checkpoint_name(seed))
    return out


def world_info(seed=0, config=None):
    """What the report prints of a world: its weights' sha256 (16), device, training seconds,
    recipe (the shipped world's record, else the cache's)."""
    config = world_config(seed, config)
    ship = shipped(seed)
    if ship and ship[1]["config"] == config:
        info = dict(ship[1])
    else:
        p = cache_dir(config) / "info.json"
        if not p.exists():
            return None
        info = json.loads(p.read_text())
    info["unet_sha256_16"] = info["sha256"][:16]
    return info


def ship(seed, log=print):
    """Copy a world trained into the cache (the protocol's recipe) into the repository's
    worlds/ with its record: sha256, recipe, training time and machine."""
    import platform
    import shutil
    config = world_config(seed)
    src = cache_dir(config)
    info = json.loads((src / "info.json").read_text())
    SHIPPED.mkdir(exist_ok=True)
    name = f"mmdit-s{seed}.safetensors"
    shutil.copyfile(src / "mmdit.safetensors", SHIPPED / name)
    record = {"file": name, "sha256": file_sha256(SHIPPED / name), "config": config,
              "config_hash": config_hash(config), "train_seconds": info["train_seconds"],
              "s_per_step": info["s_per_step"], "device": info["device"], "threads": info["threads"],
              "final_loss": info["final_loss"], "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "recipe": "SAFETY_WORLD_THREADS=%d python -m concept_world.transformer --seeds %d --retrain --ship"
                        % (info["threads"], seed),
              "note": "Trained by the recipe above. Other CPUs (and thread counts) train other floats from the "
                      "same seed; the shipped file is what every machine measures."}
    (SHIPPED / f"mmdit-s{seed}.json").write_text(json.dumps(record, indent=1) + "\n")
    log(f"[mmdit] shipped {SHIPPED / name} ({(SHIPPED / name).stat().st_size / 2**20:.2f} MiB, sha256 {record['sha256']})")


def record_gates(seed, res):
    """Keep a shipped world's test-split gates in its record (the tables list the worlds that fail)."""
    path = SHIPPED / f"mmdit-s{seed}.json"
    record = json.loads(path.read_text())
    record["test_gates"] = {"split": "test", "samples": res["samples"], "unsafe_shown": round(res["unsafe_shown"], 3),
                            "benign_shown": round(res["benign_shown"], 3), "passed": bool(res["passed"]),
                            "how": f"python -m concept_world.transformer --seeds {seed} (CPU)"}
    path.write_text(json.dumps(record, indent=1) + "\n")


def main():
    import argparse
    import sys
    ap = argparse.ArgumentParser(description="Build the transformer worlds and check their gates.")
    ap.add_argument("--comfyui", default=None)
    ap.add_argument("--seeds", default=",".join(map(str, WORLD_SEEDS)), help="training seeds of the worlds")
    ap.add_argument("--retrain", action="store_true", help="train into the cache even where a world is shipped")
    ap.add_argument("--ship", action="store_true", help="copy the trained weights into concept_world/worlds/")
    ap.add_argument("--split", default="test", choices=("dev", "test"), help="the split the gates read")
    ap.add_argument("--no-gates", action="store_true")
    a = ap.parse_args()
    ok = True
    for seed in (int(x) for x in a.seeds.split(",")):
        t0 = time.time()
        path = ensure_world(a.comfyui, seed, allow_shipped=not a.retrain)
        info = world_info(seed) if not a.retrain else json.loads((cache_dir(world_config(seed)) / "info.json").read_text())
        print(f"[mmdit] seed {seed}: {path} (ready in {time.time() - t0:.1f} s; training took "
              f"{info['train_seconds']:.0f} s on {info['device']}, {info['config']['steps']} steps; "
              f"weights sha256 {info['sha256'][:16]})")
        if a.ship:
            ship(seed)
        if not a.no_gates:
            from . import gates
            res = gates.report(seed, arch="mmdit", split_name=a.split)
            ok = res["passed"] and ok
            if a.split == "test" and not a.retrain and shipped(seed):
                record_gates(seed, res)
    sys.exit(0 if ok else 1)


_code_parts()   # now, while the file is the code this process runs

if __name__ == "__main__":
    main()
