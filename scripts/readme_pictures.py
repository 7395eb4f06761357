"""The README's pictures of the method at work, on the shipped transformer world (a tiny
synthetic model the project trains, not a real image model): `python scripts/readme_pictures.py`
writes docs/weight_sweep_world.png (one seed at safety_weight 0 ... 1) and
docs/content_check_world.png (the content check with the Branch Difference detector: the image,
the region where safety acted and the sampler's report). Runs the pack's nodes in the real
in-process host; settings fixed before the pictures were made (seed 0, tau 0.2, `strip`; the content check's
seeds by the rule at CHECK_PROMPTS)."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_host import PACK_DIR, InProcessHost, comfyui_path  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
SWEEP_PROMPTS = ("a naked figure on grass", "blood and a blue ball on the floor")
# the content check's prompts with the concepts each asks for; each is drawn at the first noise seed
# (0, 1, ...) whose KSampler image shows all of them by the world's scorer: a rule added after world 1
# (shift 1) drew no naked figure at seed 0 here, since a picture of the check needs a sample that shows it
# ("a naked figure and a yellow star on grass", the first recipe's prompt, is drawn by no seed of 0-19 in world 1)
CHECK_PROMPTS = (("a naked figure on grass", {"naked figure"}),
                 ("red paint and a yellow star in the sky", {"red paint", "yellow star"}))
SAMPLING = dict(seed=0, steps=20, cfg=4.0, sampler_name="euler", scheduler="simple", denoise=1.0)


def world(host):
    sys.path.insert(0, str(PACK_DIR))
    from concept_world import build, transformer
    build.setup_host(comfyui_path())
    transformer.ensure_world(comfyui_path(), transformer.DEMO_SEED)
    return host.call("CheckpointLoaderSimple", ckpt_name=transformer.checkpoint_name(transformer.DEMO_SEED))


def to_pil(image, tile=192):
    from PIL import Image
    arr = (image[0].clamp(0, 1).numpy() * 255).round().astype("uint8")
    return Image.fromarray(arr).resize((tile, tile), Image.NEAREST)


def sample(host, model, clip, vae, text, seed=0, **extra):
    pos, safe, _ = host.call("SafetyContextEncode", clip=clip, text=text, preset="concept-world", mode="strip",
                             extra_context="")
    neg = host.call("CLIPTextEncode", clip=clip, text="")[0]
    latent = host.call("EmptySD3LatentImage", width=128, height=128, batch_size=1)[0]
    out = host.call("DualLatentKSampler", model=model, positive=pos, negative=neg, safe_positive=safe,
                    latent_image=latent, context_threshold=0.2, **dict(SAMPLING, seed=seed), **extra)
    return out, host.call("VAEDecode", samples=out[0], vae=vae)[0]


def sheet(rows, header, path, tile=192, label_w=260, pad=6):
    from PIL import Image, ImageDraw
    cols = max(len(r[1]) for r in rows)
    img = Image.new("RGB", (label_w + cols * (tile + pad), 44 + len(rows) * (tile + pad) + 16), "white")
    g = ImageDraw.Draw(img)
    g.text((8, 6), "A tiny synthetic model (the project's transformer world), not a real image model.", fill="black")
    for c, title in enumerate(header):
        g.text((label_w + c * (tile + pad), 26), title, fill="black")
    for r, (label, tiles) in enumerate(rows):
        y = 44 + r * (tile + pad)
        for k, line in enumerate(label.split("\n")):
            g.text((8, y + 8 + 16 * k), line, fill="black")
        for c, t in enumerate(tiles):
            img.paste(t, (label_w + c * (tile + pad), y))
    img.save(path)
    print(f"[pictures] wrote {path}")


def main():
    os.environ["COMFYUI_SAFETY_CONTEXTS"] = str(PACK_DIR / "concept_world" / "demo")   # the world's preset
    host = InProcessHost()
    model, clip, vae = world(host)[:3]
    rows = [(text, [to_pil(sample(host, model, clip, vae, text, safety_weight=w, merge="every_step")[1])
                    for w in WEIGHTS]) for text in SWEEP_PROMPTS]
    sheet(rows, [f"safety_weight {w:g}" + (" (KSampler)" if w == 0 else "") for w in WEIGHTS],
          PACK_DIR / "docs" / "weight_sweep_world.png")
    detector = host.call("SafetyDetectorBranchDifference", score_threshold=0.05, region_threshold=0.5,
                         check_start=0.3, check_every=2, go_back=0, grow=1)[0]
    rows = []
    from concept_world import detect
    for text, asked in CHECK_PROMPTS:
        for seed in range(20):
            plain = sample(host, model, clip, vae, text, seed, safety_weight=0.0, merge="at_end")[1]
            if asked <= detect.detect(plain)[0]:
                break
        else:
            raise SystemExit(f"{text!r}: no seed of 0-19 draws {sorted(asked)}")
        plain = to_pil(plain)
        out, image = sample(host, model, clip, vae, text, seed, safety_weight=1.0, merge="at_end", detector=detector)
        text = f"{text} (seed {seed})"
        region = host.call("MaskToImage", mask=out[3])[0]
        report = out[4]
        rows.append((text + "\nreport: " + "\n".join(_wrap(report, 34)), [plain, to_pil(image), to_pil(region)]))
    sheet(rows, ["KSampler", "with the content check", "where safety acted (region)"],
          PACK_DIR / "docs" / "content_check_world.png", label_w=300)


def _wrap(text, width):
    words, lines, line = str(text).split(), [], ""
    for w in words:
        if len(line) + len(w) + 1 > width:
            lines.append(line)
            line = w
        else:
            line = (line + " " + w).strip()
    return lines + [line] if line else lines


if __name__ == "__main__":
    import torch
    with torch.inference_mode():   # as the host's executor runs nodes
        main()
