"""Figures of the concept-world protocol: the trade-off plot and the disruption-vs-proximity plot
(error bars: the 95 % intervals; discrete settings as points, never joined), and the sample grid."""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .protocol_report import NAMES, ci, op, setting_text
from .report import PALETTE, _font

class Canvas:
    def __init__(self, w, h, x_range, y_range, title, xlabel, ylabel, pad=60):
        self.img = Image.new("RGB", (w, h), "white")
        self.d = ImageDraw.Draw(self.img)
        self.font = _font(12)
        self.box = (pad, 40, w - 20, h - pad)
        self.xr, self.yr = x_range, y_range
        x0, y0, x1, y1 = self.box
        self.d.text((10, 8), title, fill="black", font=_font(14))
        self.d.rectangle(self.box, outline="black")
        for t in np.linspace(0, 1, 5):
            xv = x_range[0] + t * (x_range[1] - x_range[0])
            yv = y_range[0] + t * (y_range[1] - y_range[0])
            px, py = self.px(xv, yv)
            self.d.text((px - 10, y1 + 6), f"{xv:.2g}", fill="black", font=self.font)
            self.d.text((x0 - 40, py - 6), f"{yv:.2g}", fill="black", font=self.font)
        self.d.text((x0 + 40, y1 + 24), xlabel, fill="black", font=self.font)
        self.d.text((x0, y0 - 16), ylabel, fill="black", font=self.font)

    def px(self, x, y):
        x0, y0, x1, y1 = self.box
        return (x0 + (x - self.xr[0]) / (self.xr[1] - self.xr[0]) * (x1 - x0),
                y1 - (y - self.yr[0]) / (self.yr[1] - self.yr[0]) * (y1 - y0))

    def point(self, x, y, colour, xerr=None, yerr=None, size=4):
        if not (np.isfinite(x) and np.isfinite(y)):
            return
        px, py = self.px(x, y)
        if xerr and all(np.isfinite(xerr)):
            self.d.line([self.px(xerr[0], y), self.px(xerr[1], y)], fill=colour, width=1)
        if yerr and all(np.isfinite(yerr)):
            self.d.line([self.px(x, yerr[0]), self.px(x, yerr[1])], fill=colour, width=1)
        self.d.ellipse([px - size, py - size, px + size, py + size], fill=colour)

    def legend(self, names):
        for i, (name, colour) in enumerate(names):
            y = self.box[1] + 6 + 16 * i
            self.d.rectangle([self.box[2] - 200, y + 2, self.box[2] - 190, y + 12], fill=colour)
            self.d.text((self.box[2] - 185, y), name, fill="black", font=self.font)

    def save(self, path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.img.save(path)


def side_by_side(panels, path):
    """One PNG with the panels (one per world) in a row."""
    out = Image.new("RGB", (sum(p.width for p in panels), panels[0].height), "white")
    x = 0
    for p in panels:
        out.paste(p, (x, 0))
        x += p.width
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    out.save(path)


def colours():
    return {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(NAMES)}


def tradeoff_plot(results, path):
    """Unsafe rate against D on benign concepts, one panel per world; every tested setting is a
    point with its 95 % intervals (discrete settings: not joined)."""
    col = colours()
    panels = []
    for res in results:
        c = Canvas(520, 440, (0, 1), (0, 1), f"World seed {res['seed']}: test split",
                   "D on benign concepts (lower is better)", "unsafe rate (lower is better)")
        for r in res["rows"]:
            size = 5 if r["role"] in ("operating point", "reference") else 3
            c.point(r["D_benign"][0], r["unsafe"][0], col[r["family"]], r["D_benign"][1:], r["unsafe"][1:], size)
        c.legend([(NAMES[f], col[f]) for f in NAMES])
        panels.append(c.img)
    side_by_side(panels, path)


def proximity_plot(results, path, families=("uce", "ours", "sld", "negative")):
    """Each benign concept's mean D against its cosine to the nearest unsafe concept, for the
    dev-chosen operating points, one panel per world, with the least-squares lines."""
    col = colours()
    panels = []
    for res in results:
        xs = list(res["cosines"].values())
        c = Canvas(520, 440, (min(xs) - 0.05, max(xs) + 0.05), (0, 1), f"World seed {res['seed']}: D vs proximity",
                   "cosine to the nearest unsafe concept (text encoder)", "mean D of the concept (test)")
        for fam in families:
            r = op(res, fam)
            if r is None:
                continue
            pts = [(res["cosines"][k], v) for k, v in r["D_per_concept"].items() if np.isfinite(v)]
            for x, y in pts:
                c.point(x, y, col[fam], size=3)
            if len(pts) >= 3:
                a, b = np.polyfit([p[0] for p in pts], [p[1] for p in pts], 1)
                lo, hi = c.xr
                c.d.line([c.px(lo, a * lo + b), c.px(hi, a * hi + b)], fill=col[fam], width=2)
        c.legend([(f"{NAMES[f]} (slope {ci(op(res, f)['slope'], 2)})", col[f]) for f in families if op(res, f)])
        panels.append(c.img)
    side_by_side(panels, path)


def faintest_unsafe(analyses, prompts):
    """(sample index, mean fraction) of the faintest unsafe object the detector still counts in
    a run (a ghost: drawn part way between background and concept colour), or (None, None)."""
    best = (None, None)
    P = len(prompts)
    for n, found in enumerate(analyses):
        for c in prompts[n % P].get("unsafe", ()):
            if c in found:
                f = found[c]["mass"] / max(1, int(found[c]["mask"].sum()))
                if best[1] is None or f < best[1]:
                    best = (n, f)
    return best


def tile(image, scale=2):
    """A decoded sample (H x W x 3, floats in [0, 1]) as uint8 pixels, upscaled without smoothing."""
    a = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return np.asarray(Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.NEAREST)).copy()


def sample_sheet(headers, rows, path, label_w=220, head_h=34):
    """A labelled sheet of samples: `headers` over the columns; rows [(label lines, tiles, captions)]
    with tiles from `tile` and captions {column: (text, colour)} written at the tile's foot."""
    h, w = next(t for _, tiles, _ in rows for t in tiles).shape[:2]
    img = Image.new("RGB", (label_w + len(headers) * (w + 4), head_h + len(rows) * (h + 4)), "white")
    d = ImageDraw.Draw(img)
    font = _font(10)
    for j, t in enumerate(headers):
        d.text((label_w + j * (w + 4), 2), t[:24], fill="black", font=font)
        d.text((label_w + j * (w + 4), 14), t[24:48], fill="black", font=font)
    for k, (labels, tiles, captions) in enumerate(rows):
        y = head_h + k * (h + 4)
        for i, line in enumerate(labels):
            d.text((4, y + h // 2 - 6 * len(labels) + 13 * i), line, fill="black", font=font)
        for j, t in enumerate(tiles):
            img.paste(Image.fromarray(t), (label_w + j * (w + 4), y))
        for j, (text, colour) in captions.items():
            d.text((label_w + j * (w + 4) + 2, y + h - 12), text, fill=colour, font=font)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def grid(res, prompts, path, decode, scale=2, n_cols=10):
    """Rows: the dev-chosen operating points of every family (first noise slot); columns:
    co-occurrence, implicit and unsafe prompts, held-out proximal ones, and last each row's
    faintest unsafe object that the ghost-aware detector still counts (any prompt, any slot)."""
    rows = [r for r in res["rows"] if r["role"] in ("reference", "operating point")]
    cols = [i for i, p in enumerate(prompts) if p["kind"] == "cooccur"][:4]
    cols += [i for i, p in enumerate(prompts) if p["kind"] in ("implicit", "unsafe")][:3]
    cols += [i for i, p in enumerate(prompts) if p["kind"] == "proximal"][:n_cols - len(cols)]
    sheet = []
    for r in rows:
        ghost, frac = faintest_unsafe(r["run"]["analyses"], prompts)
        picks = cols + ([ghost] if ghost is not None else [])
        tiles = [tile(im, scale) for im in decode(r["run"]["latents"][picks])]
        caption = ("none counted", "black") if ghost is None else (f"fraction {frac:.2f}", "white")
        sheet.append(([NAMES[r["family"]], setting_text(r["family"], r["setting"])[:40]], tiles,
                      {len(cols): caption}))
    sample_sheet([prompts[i]["text"] for i in cols] + ["faintest unsafe object counted"], sheet, path)
