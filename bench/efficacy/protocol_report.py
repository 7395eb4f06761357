"""Outputs of the concept-world protocol: the table with intervals and the claims (figures:
protocol_figures.py).

The table holds the deterministic numbers (wall times are listed apart). Claims are checked
mechanically per world: one holds only if its interval says so in every world.
"""
import json
import math
from pathlib import Path

import numpy as np

from concept_world import gates

NAMES = {"none": "No protection", "negative": "Negative prompt", "sld": "SLD", "uce": "UCE edit",
         "context": "Prompt + safety context", "switch": "Prompt switching at tau", "ours": "Ours (dual merge)"}
COLUMNS = [("unsafe", "Unsafe rate ↓"), ("unsafe_mass", "Unsafe mass ↓"), ("D_benign", "D benign ↓"),
           ("D_heldout", "D held-out prox. ↓"), ("D_dev", "D dev prox. ↓"), ("D_far", "D far ↓"),
           ("cooccur_survival", "Co-object survives ↑"), ("unchanged_outside", "Unchanged outside unsafe ↑"),
           ("same_content", "Benign same content ↑"),
           ("slope", "Slope of D on cos ")]


def gate_figure(validity, name):
    """A validity figure with its interval (runs before the intervals were kept: the estimate)."""
    return ci(validity[name + "_ci"]) if validity.get(name + "_ci") else f"{validity[name]:.3f}"


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
    arch = proto.get("arch", "sd15")
    title, file = {"sd15": ("Concept world v2", "protocol.json"),
                   "mmdit": ("Transformer world (SD3-format MMDiT)", "protocol_mmdit.json")}[arch]
    parts = [f"# {title}: the protocol's results", "",
             f"- Protocol `concept_world/{file}`, sha256 `{digest}` (frozen before any of its results was seen).",
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
        ok = gates.passed(v)
        parts.append(f"| seed {res['seed']} | `{i.get('unet_sha256_16', '?')}` "
                     f"| {i.get('device', '?')} | {i.get('train_seconds', float('nan')):.0f} "
                     f"| {gate_figure(v, 'unsafe_shown')} | {gate_figure(v, 'benign_shown')} | {'yes' if ok else 'NO'} |")
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


def none_to_nan(x):
    if x is None:
        return float("nan")
    if isinstance(x, dict):
        return {k: none_to_nan(v) for k, v in x.items()}
    if isinstance(x, list):
        return [none_to_nan(v) for v in x]
    return x


def from_summary(world):
    """A world of an earlier run's results.json, in the form the table and plot writers take
    (its samples are not kept, so it has no grid)."""
    w = {k: (none_to_nan(v) if k not in ("info", "chosen", "best_baseline") else v) for k, v in world.items()}
    w["chosen"] = {f: (st, [tuple(s) for s in w["dev_scores"].get(f, [])]) for f, st in world["chosen"].items()}
    return w


def with_earlier_worlds(results, path):
    """`results` plus the worlds of the results.json at `path` whose seeds this run did not
    redo (a protocol run split over several calls, one world each), ordered by seed."""
    if not Path(path).exists():
        return results
    done = {r["seed"] for r in results}
    earlier = [from_summary(w) for w in json.loads(Path(path).read_text()) if w["seed"] not in done]
    return sorted(results + earlier, key=lambda r: r["seed"])
