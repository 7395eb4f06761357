"""Outputs of the concept-world protocol: table with intervals, plots with error bars, grid.

The table holds the deterministic numbers (wall times are listed apart). Claims are checked
mechanically per world: one holds only if its interval says so in every world.
"""
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .report import PALETTE, _font

NAMES = {"none": "No protection", "negative": "Negative prompt", "sld": "SLD", "uce": "UCE edit",
         "context": "Prompt + safety context", "switch": "Prompt switching at tau", "ours": "Ours (dual merge)"}
COLUMNS = [("unsafe", "Unsafe rate ↓"), ("unsafe_mass", "Unsafe mass ↓"), ("D_benign", "D benign ↓"),
           ("D_heldout", "D held-out prox. ↓"), ("D_dev", "D dev prox. ↓"), ("D_far", "D far ↓"),
           ("cooccur_survival", "Co-object survives ↑"), ("unchanged_outside", "Unchanged outside unsafe ↑"),
           ("same_content", "Benign same content ↑"),
           ("slope", "Slope of D on cos ")]


def ci(t, nd=3):
    est, lo, hi = t
    if not np.isfinite(est):
        return "n/a"
    return f"{est:.{nd}f} [{lo:.{nd}f}, {hi:.{nd}f}]"


def setting_text(family, st):
    if not st:
        return "-"
    return ", ".join(f"{k} {v!r}" if isinstance(v, str) else f"{k} {v:g}" for k, v in sorted(st.items()))


def world_table(res):
    head = "| Method | Setting | Role | " + " | ".join(c[1] for c in COLUMNS) + " | Model evals x |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 4)]
    for r in res["rows"]:
        cells = " | ".join(ci(r[k]) for k, _ in COLUMNS)
        lines.append(f"| {NAMES[r['family']]} | {setting_text(r['family'], r['setting'])} | {r['role']} | {cells} "
                     f"| {r['evals_x']:.2f} |")
    return "\n".join(lines)


def paired_table(res):
    lines = ["| Ours minus | Unsafe rate | D benign | D held-out proximal | Co-object survival |", "|---|---|---|---|---|"]
    for other, d in res["paired"].items():
        tag = " (best baseline)" if other == res["best_baseline"] else ""
        lines.append(f"| {NAMES[other]}{tag} | {ci(d['unsafe'])} | {ci(d['D_benign'])} | {ci(d['D_heldout'])} "
                     f"| {ci(d['cooccur_survival'])} |")
    return "\n".join(lines)


def op(res, family):
    return next((r for r in res["rows"] if r["family"] == family and r["role"] == "operating point"), None)


def claims(results):
    """[(claim, [verdict per world])]; verdicts read the 95 % intervals."""
    def below(t):
        return "yes" if t[2] < 0 else ("no (the reverse holds)" if t[1] > 0 else "not resolved")

    out = []
    for other in ("best", "context", "switch"):
        name = {"best": "the best baseline", "context": "prompt + safety context",
                "switch": "prompt switching at tau"}[other]
        for metric, what in (("unsafe", "a lower unsafe rate"), ("D_benign", "less disruption of benign concepts"),
                             ("D_heldout", "less disruption of held-out proximal concepts")):
            verdicts = []
            for res in results:
                k = res["best_baseline"] if other == "best" else other
                d = res["paired"].get(k)
                verdicts.append(below(d[metric]) if d else "n/a")
            out.append((f"Ours at its dev point gives {what} than {name}", verdicts))
    for fam, want in (("uce", "positive"), ("ours", "flat (interval holds 0)")):
        verdicts = []
        for res in results:
            r = op(res, fam)
            if r is None:
                verdicts.append("n/a")
                continue
            est, lo, hi = r["slope"]
            verdicts.append(("yes" if lo > 0 else "no") if fam == "uce" else ("yes" if lo <= 0 <= hi else "no"))
        out.append((f"Slope of D on proximity to the erased concept, {NAMES[fam]}: {want}", verdicts))
    return out


def markdown(results, proto, digest, detector, plots, timing=True):
    parts = ["# Concept world v2: the protocol's results", "",
             f"- Protocol `concept_world/protocol.json`, sha256 `{digest}` (frozen before any v2 result was seen).",
             f"- Sampling: {proto['sampling']}; noise seed {proto['noise_seed']}; test split "
             f"{results[0]['n_test_prompts']} prompts x {results[0]['slots']} noise slots; intervals: 95 % two-way "
             f"cluster bootstrap over prompts and noise slots ({proto['bootstrap']['resamples']} resamples).",
             f"- Detector on held-out renderings with ghosts: exact-set accuracy {detector['exact']:.4f}, "
             f"per-concept {detector['per_concept']:.4f}, ghost objects {detector['ghost_objects']:.4f} "
             f"(n {detector['n']}, noise {detector['noise']}).",
             "- D = 1 - presence x colour fidelity x IoU against the unprotected sample of the same prompt and "
             "noise (0: untouched, 1: gone). Slope: least squares of each benign concept's mean D on its "
             "text-encoder cosine to the nearest unsafe concept.", ""]
    parts += ["## Worlds", "", "| World | UNet sha256 (16) | Trained on | Training s | Unsafe shown (bar 0.80) "
              "| Benign shown (bar 0.90) | Valid |", "|---|---|---|---|---|---|---|"]
    for res in results:
        i, v = res["info"] or {}, res["validity"]
        ok = v["unsafe_shown"] >= 0.8 and v["benign_shown"] >= 0.9
        parts.append(f"| seed {res['seed']} | `{i.get('unet_sha256_16', '?')}` "
                     f"| {i.get('device', '?')} | {i.get('train_seconds', float('nan')):.0f} "
                     f"| {v['unsafe_shown']:.3f} | {v['benign_shown']:.3f} | {'yes' if ok else 'NO'} |")
    parts += ["", "## Claims, per world (a claim holds only where every world says yes)", "",
              "| Claim | " + " | ".join(f"world {r['seed']}" for r in results) + " |",
              "|---|" + "---|" * len(results)]
    for claim, verdicts in claims(results):
        parts.append(f"| {claim} | " + " | ".join(verdicts) + " |")
    for res in results:
        parts += ["", f"## World seed {res['seed']}", "", "Dev choices (the protocol's rule): "
                  + "; ".join(f"{NAMES[f]}: {setting_text(f, c[0])}" for f, c in res["chosen"].items()) + ".", "",
                  world_table(res), "", "Paired differences on the same samples (ours at its dev point minus):", "",
                  paired_table(res)]
    parts += ["", "![trade-off](tradeoff.png)", "", "![disruption vs proximity](disruption_vs_proximity.png)", "",
              "![samples](grid.png)", ""]
    if timing:
        parts += ["## Wall time (changes from run to run)", ""]
        for res in results:
            parts.append(f"- World seed {res['seed']}: dev tuning {res['dev_seconds']:.0f} s, whole world "
                         f"{res['seconds']:.0f} s.")
    return "\n".join(parts) + "\n"


# -- plots ------------------------------------------------------------------------------------
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


def grid(res, prompts, path, decode, scale=2, n_cols=10):
    """Rows: the dev-chosen operating points of every family (first noise slot); columns:
    co-occurrence, implicit and unsafe prompts, and held-out proximal ones."""
    rows = [r for r in res["rows"] if r["role"] in ("reference", "operating point")]
    cols = [i for i, p in enumerate(prompts) if p["kind"] == "cooccur"][:4]
    cols += [i for i, p in enumerate(prompts) if p["kind"] in ("implicit", "unsafe")][:3]
    cols += [i for i, p in enumerate(prompts) if p["kind"] == "proximal"][:n_cols - len(cols)]
    h = w = 64 * scale
    label_w, head_h = 220, 34
    img = Image.new("RGB", (label_w + len(cols) * (w + 4), head_h + len(rows) * (h + 4)), "white")
    d = ImageDraw.Draw(img)
    font = _font(10)
    for j, i in enumerate(cols):
        t = prompts[i]["text"]
        d.text((label_w + j * (w + 4), 2), t[:24], fill="black", font=font)
        d.text((label_w + j * (w + 4), 14), t[24:48], fill="black", font=font)
    for k, r in enumerate(rows):
        y = head_h + k * (h + 4)
        d.text((4, y + h // 2 - 12), NAMES[r["family"]], fill="black", font=font)
        d.text((4, y + h // 2 + 1), setting_text(r["family"], r["setting"])[:40], fill="black", font=font)
        ims = decode(r["run"]["latents"][cols])
        for j in range(len(cols)):
            a = (np.clip(ims[j], 0, 1) * 255).round().astype(np.uint8)
            img.paste(Image.fromarray(a).resize((w, h), Image.NEAREST), (label_w + j * (w + 4), y))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def summary_json(results):
    """The numbers of the table, without grids and runs (for results.json)."""
    keep = ("label", "family", "setting", "role", "evals", "evals_x", "seconds", "D_per_concept",
            *(k for k, _ in COLUMNS), "D_cooccur")
    out = []
    for res in results:
        out.append({k: v for k, v in res.items() if k not in ("rows", "chosen")}
                   | {"chosen": {f: c[0] for f, c in res["chosen"].items()},
                      "dev_scores": {f: c[1] for f, c in res["chosen"].items()},
                      "rows": [{k: r[k] for k in keep if k in r} for r in res["rows"]]})
    return out


def nan_to_none(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: nan_to_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [nan_to_none(v) for v in x]
    return x
