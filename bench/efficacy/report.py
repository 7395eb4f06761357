"""The benchmark's outputs: markdown table, trade-off plot and image grid (PIL only).

`table()` holds only deterministic numbers (two runs give the same text); wall times are
in `timing_table()`, which changes from run to run.
"""
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FAMILY_NAMES = {"none": "No protection", "negative": "Negative prompt", "sld": "SLD",
                "uce": "UCE edit", "ours": "Ours (dual latent)", "ours_gate": "Ours + prompt gate"}


def fmt(x, nd=3):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def table(rows):
    head = ("| Method | Setting | Unsafe rate ↓ | Benign same content ↑ | Latent dist ↓ | Pixel dist ↓ "
            "| Proximal lost ↓ (pairs) | Model evals x |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        mark = " †" if r.get("reused") else ""
        lines.append(f"| {FAMILY_NAMES[r['family']]} | {r['setting'] or '-'}{mark} | {fmt(r['unsafe_rate'])} "
                     f"| {fmt(r['benign_same'])} | {fmt(r['latent_dist'], 4)} | {fmt(r['pixel_dist'], 4)} "
                     f"| {fmt(r['proximal_lost'])} ({r['proximal_pairs']}) | {fmt(r['evals_x'], 2)} |")
    return "\n".join(lines)


def timing_table(rows):
    lines = ["| Method | Setting | Sampling s / image | Wall time x |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {FAMILY_NAMES[r['family']]} | {r['setting'] or '-'} | {r['seconds_per_image']:.3f} "
                     f"| {fmt(r['time_x'], 2)} |")
    return "\n".join(lines)


def curves(rows):
    """{curve name: [rows]}: one curve per method (ours: per merge mode and threshold)."""
    out = {}
    for r in rows:
        m = r["method"]
        name = FAMILY_NAMES[r["family"]]
        if r["family"] == "ours":
            name = f"Ours {m.merge} tau={m.threshold:g}"
        if r["family"] == "ours_gate":
            name = "Ours + prompt gate"
        out.setdefault(name, []).append(r)
    return out


PALETTE = [(0, 0, 0), (120, 120, 120), (214, 39, 40), (148, 103, 189), (31, 119, 180), (44, 160, 44),
           (23, 190, 207), (255, 127, 14), (188, 189, 34), (140, 86, 75), (227, 119, 194)]


def _font(size=12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def plot(rows, path, title="Trade-off"):
    """Two panels: unsafe rate vs benign same-content share, and vs proximal concepts lost."""
    W, H, pad = 460, 400, 60
    legend_h = 18 * (len(curves(rows)) + 1)
    img = Image.new("RGB", (2 * W, H + legend_h + 30), "white")
    d = ImageDraw.Draw(img)
    font = _font(12)
    d.text((10, 6), title, fill="black", font=_font(14))
    panels = [("benign_same", "benign samples with the same content (higher is better)"),
              ("proximal_lost", "proximal concepts lost (lower is better)")]
    for p, (ykey, ylabel) in enumerate(panels):
        x0, y0, x1, y1 = p * W + pad, 52, p * W + W - 20, H - pad + 20

        def to_px(u, v):
            return x0 + u * (x1 - x0), y1 - v * (y1 - y0)

        d.rectangle([x0, y0, x1, y1], outline="black")
        for t in (0, 0.25, 0.5, 0.75, 1.0):
            px, _ = to_px(t, 0)
            _, py = to_px(0, t)
            d.line([px, y1, px, y1 + 4], fill="black")
            d.text((px - 10, y1 + 6), f"{t:g}", fill="black", font=font)
            d.line([x0 - 4, py, x0, py], fill="black")
            d.text((x0 - 30, py - 6), f"{t:g}", fill="black", font=font)
        d.text((x0 + 60, y1 + 22), "unsafe rate (lower is better)", fill="black", font=font)
        d.text((x0 - 50, y0 - 24), ylabel, fill="black", font=font)
        for c, (name, rs) in enumerate(curves(rows).items()):
            colour = PALETTE[c % len(PALETTE)]
            pts = [to_px(r["unsafe_rate"], r[ykey]) for r in rs
                   if not (math.isnan(r["unsafe_rate"]) or math.isnan(r[ykey]))]
            if len(pts) > 1:
                d.line(pts, fill=colour, width=2)
            for (px, py) in pts:
                d.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
    for c, name in enumerate(curves(rows)):
        colour = PALETTE[c % len(PALETTE)]
        y = H + 30 + 18 * (c // 2)
        x = 20 + (c % 2) * W
        d.rectangle([x, y + 3, x + 12, y + 13], fill=colour)
        d.text((x + 18, y), name, fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def grid(runs, rows, prompts, n_prompts, path, picks=None, scale=2):
    """Rows: selected methods; columns: a few prompts of each kind at the first seed."""
    if picks is None:
        picks = [r["key"] for r in rows]
    cols = []
    for kind in ("unsafe", "benign", "proximal"):
        cols += [i for i, p in enumerate(prompts) if p.kind == kind][:2]
    first = runs[picks[0]]["images"]
    h, w = first.shape[1] * scale, first.shape[2] * scale
    label_w, head_h = 210, 34
    img = Image.new("RGB", (label_w + len(cols) * (w + 4), head_h + len(picks) * (h + 4)), "white")
    d = ImageDraw.Draw(img)
    font = _font(10)
    for j, i in enumerate(cols):
        text = f"{prompts[i].kind}: {prompts[i].text}"
        d.text((label_w + j * (w + 4), 2), text[:26], fill="black", font=font)
        d.text((label_w + j * (w + 4), 14), text[26:52], fill="black", font=font)
    by_key = {r["key"]: r for r in rows}
    for k, key in enumerate(picks):
        r = by_key[key]
        y = head_h + k * (h + 4) + h // 2 - 12
        d.text((4, y), FAMILY_NAMES[r["family"]] + (" (derived)" if r.get("reused") else ""), fill="black", font=font)
        d.text((4, y + 13), (r["setting"] or "")[:36], fill="black", font=font)
        ims = runs[key]["images"]
        for j, i in enumerate(cols):
            a = (np.clip(ims[i], 0, 1) * 255).round().astype(np.uint8)
            tile = Image.fromarray(a).resize((w, h), Image.NEAREST)
            img.paste(tile, (label_w + j * (w + 4), head_h + k * (h + 4)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def gate_section(prompts, decisions, threshold):
    """The prompt gate on the world's prompts: misses and false alarms of the term part, the
    similarity part and the whole gate (what the node decides), and the cosines seen."""
    unsafe = [d for p, d in zip(prompts, decisions) if p.kind == "unsafe"]
    benign = [d for p, d in zip(prompts, decisions) if p.kind != "unsafe"]
    parts = {"term part (whole-word match)": lambda d: d.term_score == 1.0,
             f"similarity part (score >= {threshold:g})": lambda d: d.similarity_score >= threshold,
             "whole gate (the node's decision)": lambda d: bool(d.is_unsafe)}
    lines = ["## Prompt gate on the world's prompts", "",
             "| Part | Unsafe flagged | Misses | Benign flagged (false alarms) |", "|---|---|---|---|"]
    for name, flag in parts.items():
        u, b = sum(map(flag, unsafe)), sum(map(flag, benign))
        lines.append(f"| {name} | {u}/{len(unsafe)} | {len(unsafe) - u} | {b}/{len(benign)} |")

    def span(ds):
        v = [d.similarity for d in ds if d.similarity is not None]
        return f"{min(v):.3f}..{max(v):.3f}" if v else "n/a"
    lines += ["", f"Centred cosine to the nearest unsafe concept: unsafe prompts {span(unsafe)}, "
                  f"benign prompts {span(benign)}."]
    return "\n".join(lines)


def markdown(world, rows, validity, elapsed, plot_name, grid_name, timing=True, gate=None):
    s = world.safety
    parts = [f"# Efficacy benchmark: {world.name}", ""]
    parts += [f"- Checkpoint `{world.checkpoint}`; {len(world.prompts)} prompts "
              f"({', '.join(f'{len(world.by_kind(k))} {k}' for k in ('unsafe', 'benign', 'proximal'))}) "
              f"x seeds {list(world.seeds)}; {world.width}x{world.height}, {world.steps} steps "
              f"{world.sampler}/{world.scheduler}, CFG {world.cfg:g}.",
              f"- Unsafe concept `{world.unsafe_concept}`. Ours: safety context \"{s.context}\" ({s.mode}). "
              f"Negative prompt: \"{s.negative}\". SLD concept: \"{s.sld_concept}\" (warm-up scaled from "
              f"50 steps; WEAK guidance scale 20). UCE: erase {list(s.uce_erase)} -> \"{s.uce_target}\", "
              f"preserve {list(s.uce_preserve)}, lambda 0.1.",
              f"- Unprotected reference: unsafe concept shown in {fmt(validity['unsafe_shown'])} of unsafe "
              f"samples; requested concepts shown in {fmt(validity['benign_shown'])} of benign samples."]
    parts += [f"- {n}" for n in world.notes]
    if any(r.get("reused") for r in rows):
        parts += ["- † Not a separate sampler run: ours with w = 0 is the host's KSampler whatever the mode and "
                  "threshold (run once per mode); ours at_end with w not in {0, 0.5} merges the two branch latents "
                  "that the w = 0.5 run's node returned, with the pack's own (1 - w) * z_u + w * z_s. Cost columns "
                  "are those of the run it comes from. Ours + prompt gate: the gate decides per prompt as the "
                  "SafetyPromptGate node does (default threshold, the world's text encoder); prompts it passes get "
                  "w = 0, i.e. exactly the unprotected sample, flagged ones the method's sample from the run named; "
                  "costs are mixed in the same shares."]
    parts += ["", table(rows), "", f"![trade-off]({plot_name})", "", f"![samples]({grid_name})", ""]
    if gate is not None:
        parts += [gate_section(world.prompts, *gate), ""]
    if timing:
        parts += ["## Wall time (changes from run to run)", "", timing_table(rows), "",
                  f"Total benchmark time: {elapsed:.0f} s.", ""]
    return "\n".join(parts)
