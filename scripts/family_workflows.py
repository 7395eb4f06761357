"""The model-family example workflows (SDXL, Flux dev, Wan 2.1): the loaders a user of that
family wires (UNETLoader, the family's text-encoder loader, VAELoader), pointing at the tiny
seeded files setup_host.sh builds (scripts/build_family_checkpoints.py, build_family_encoders.py).

Flux's T5-XXL and Wan's umT5-XXL are billions of parameters: no tiny file exists for them, so
those two loaders name the files ComfyUI's own templates use. The tests run these two workflows
with that one loader node swapped for a stand-in (tests/workflow_files.py, STAND_IN).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_family_checkpoints import file_name  # noqa: E402
from build_family_encoders import ENCODERS  # noqa: E402
from build_workflows import C0, C1, C2, C3, C4, NEGATIVE, PROMPT, SIZE, Graph, out, sampler_values  # noqa: E402

CLIP_L, CLIP_G = ENCODERS["clip_l"][1], ENCODERS["clip_g"][1]
T5XXL = "t5xxl_fp16.safetensors"
UMT5XXL = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN_NEGATIVE = "blurry, static, low quality, worst quality, jpeg artifacts, deformed, extra fingers"


def encode(g, clip, negative):
    enc = g.add("SafetyContextEncode", (C1, None), clip=out(clip, 0), text=PROMPT, preset="sexual",
                mode="append", extra_context="")
    neg = g.add("CLIPTextEncode", (C1, None), title="Negative", clip=out(clip, 0), text=negative)
    return enc, neg


def sample_and_decode(g, model, positive, enc, neg, lat, vae, **values):
    """DualLatentKSampler (safe_positive straight from the encoder) and VAEDecode of its result."""
    ks = g.add("DualLatentKSampler", (C2, None), model=model, positive=positive, negative=out(neg, 0),
               safe_positive=out(enc, 1), latent_image=out(lat, 0), **sampler_values(**values))
    return g.add("VAEDecode", (C3, None), samples=out(ks, 0), vae=out(vae, 0))


def sdxl_safe_txt2img(info):
    g = Graph(info, "sdxl_safe_txt2img")
    g.note("Safe txt2img on SDXL (separate model files).\n\nUNETLoader loads the SDXL diffusion model, "
           "DualCLIPLoader (type sdxl) its two text encoders, CLIP-L and CLIP-G, VAELoader the VAE. "
           "SafetyContextEncode encodes your prompt and the safety context with both encoders; "
           "DualLatentKSampler is used as with SD1.5. Here: the tiny seeded test files; put your SDXL "
           "model, clip_l, clip_g and VAE in their place (an all-in-one SDXL checkpoint works with "
           "CheckpointLoaderSimple, as in safe_txt2img).", (20, 0), (760, 190))
    unet = g.add("UNETLoader", (C0, None), unet_name=file_name("sdxl"), weight_dtype="default")
    clip = g.add("DualCLIPLoader", (C0, None), clip_name1=CLIP_L, clip_name2=CLIP_G, type="sdxl")
    vae = g.add("VAELoader", (C0, None), vae_name=ENCODERS["taesd4"][1])
    lat = g.add("EmptyLatentImage", (C0, None), width=SIZE, height=SIZE, batch_size=1)
    enc, neg = encode(g, clip, NEGATIVE)
    dec = sample_and_decode(g, out(unet, 0), out(enc, 0), enc, neg, lat, vae, cfg=6.0)
    g.add("SaveImage", (C4, None), images=out(dec, 0), filename_prefix="safety/sdxl_safe_txt2img")
    return g


def flux_safe_txt2img(info):
    g = Graph(info, "flux_safe_txt2img")
    g.note("Safe txt2img on Flux dev.\n\nAs Flux is used: cfg 1 (the negative is not evaluated) and FluxGuidance "
           "on the positive. Connect safe_positive straight from SafetyContextEncode: the safe branch is your "
           "positive with its text swapped, so it gets the same guidance (and any ControlNet or reference "
           "latent on the positive). DualCLIPLoader (type flux) loads CLIP-L and T5-XXL; here the tiny seeded "
           "test files where they exist and T5-XXL by its usual name: put your own files in their place.",
           (20, 0), (760, 190))
    unet = g.add("UNETLoader", (C0, None), unet_name=file_name("flux_dev"), weight_dtype="default")
    clip = g.add("DualCLIPLoader", (C0, None), clip_name1=CLIP_L, clip_name2=T5XXL, type="flux")
    vae = g.add("VAELoader", (C0, None), vae_name=ENCODERS["taesd16"][1])
    lat = g.add("EmptySD3LatentImage", (C0, None), width=SIZE, height=SIZE, batch_size=1)
    enc, neg = encode(g, clip, "")
    guided = g.add("FluxGuidance", (C2, None), conditioning=out(enc, 0), guidance=3.5)
    dec = sample_and_decode(g, out(unet, 0), out(guided, 0), enc, neg, lat, vae, cfg=1.0, scheduler="simple")
    g.add("SaveImage", (C4, None), images=out(dec, 0), filename_prefix="safety/flux_safe_txt2img")
    return g


def wan_safe_txt2video(info):
    g = Graph(info, "wan_safe_txt2video")
    g.note("Safe text-to-video on Wan 2.1.\n\nCLIPLoader (type wan) loads umT5-XXL, UNETLoader the Wan "
           "model (ModelSamplingSD3 shift 8, as ComfyUI's Wan template), EmptyHunyuanLatentVideo a 5-D "
           "latent (length 5: two latent frames). DualLatentKSampler runs on the whole clip: the safety "
           "stream acts on every frame. CreateVideo and SaveVideo write an mp4. Here: the tiny seeded test "
           "files, umT5-XXL by its usual name: put your own files in their place.", (20, 0), (760, 190))
    unet = g.add("UNETLoader", (C0, None), unet_name=file_name("wan21_t2v"), weight_dtype="default")
    shift = g.add("ModelSamplingSD3", (C0, None), model=out(unet, 0), shift=8.0)
    clip = g.add("CLIPLoader", (C0, None), clip_name=UMT5XXL, type="wan")
    vae = g.add("VAELoader", (C0, None), vae_name=ENCODERS["wan21_vae"][1])
    # titled: this frontend's locale names the node differently from the host's display_name
    lat = g.add("EmptyHunyuanLatentVideo", (C0, None), title="Empty latent video (5 frames)", width=SIZE,
                height=SIZE, length=5, batch_size=1)
    enc, neg = encode(g, clip, WAN_NEGATIVE)
    dec = sample_and_decode(g, out(shift, 0), out(enc, 0), enc, neg, lat, vae, cfg=6.0, scheduler="simple")
    video = g.add("CreateVideo", (C3, None), images=out(dec, 0), fps=16.0)
    g.add("SaveVideo", (C4, None), video=out(video, 0), filename_prefix="safety/wan_safe_txt2video",
          format="auto", codec="auto")
    return g


FAMILY_BUILDERS = {"sdxl_safe_txt2img": sdxl_safe_txt2img, "flux_safe_txt2img": flux_safe_txt2img,
                   "wan_safe_txt2video": wan_safe_txt2video}
