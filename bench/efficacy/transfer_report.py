"""Outputs of transfer_bench.py: this world's table and claims beside the reference run's figures."""
import json
from pathlib import Path

from concept_world import gates

from . import protocol_report as rep
from .protocol_run import key

COMPARED = (("unsafe", "Unsafe rate"), ("D_benign", "D benign"), ("D_heldout", "D held-out prox."),
            ("cooccur_survival", "Co-object survives"))


def overlap(a, b):
    """Whether two (estimate, low, high) intervals share a point."""
    return a[1] <= b[2] and b[1] <= a[2]


def comparison(res):
    """Per row: this world's figure and the reference's, and whether their intervals overlap."""
    ref = res["reference"]
    head = "| Method | Setting | " + " | ".join(f"{n} here | {n} reference" for _, n in COMPARED) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(COMPARED))]
    apart = []
    for r in res["rows"]:
        other = ref["rows"].get(key(r["family"], r["setting"]))
        cells = []
        for m, n in COMPARED:
            theirs = other.get(m) if other else None
            cells.append(rep.ci(r[m]))
            if theirs is None or theirs[0] is None:
                cells.append("not run")
                continue
            theirs = tuple(float("nan") if v is None else v for v in theirs)
            mark = "" if overlap(r[m], theirs) else " (apart)"
            if mark:
                apart.append(f"{rep.NAMES[r['family']]} {rep.setting_text(r['family'], r['setting'])}: {n}")
            cells.append(rep.ci(theirs) + mark)
        lines.append(f"| {rep.NAMES[r['family']]} | {rep.setting_text(r['family'], r['setting'])} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines), apart


def markdown(res, proto, digest):
    i, v, ref = res["info"] or {}, res["validity"], res["reference"]
    ok = gates.passed(v)
    table, apart = comparison(res)
    parts = [
        "# The concept-world table on a world trained elsewhere", "",
        f"- Protocol `concept_world/protocol.json`, sha256 `{digest}`; sampling {proto['sampling']}; test split "
        f"{res['n_test_prompts']} prompts x the first {res['slots']} noise slots (the reference used "
        f"{ref['slots']}); 95 % two-way cluster-bootstrap intervals ({proto['bootstrap']['resamples']} resamples).",
        f"- This world: seed {res['seed']}, UNet `{i.get('unet_sha256_16', '?')}`, trained on {i.get('device', '?')} "
        f"in {i.get('train_seconds', float('nan')):.0f} s. Reference run: world seed "
        f"{ref.get('seed', res['seed'])}, UNet `{ref['unet_sha256_16']}` ({ref['device']})"
        + ("." if ref.get("seed", res["seed"]) == res["seed"] else
           ": another world's dev choices, applied here untuned (the protocol tunes each world on its own dev)."),
        "- Nothing tuned here: every method at the reference run's dev-chosen operating point; the best "
        f"baseline ({rep.NAMES.get(res['best_baseline'], '-')}) by the protocol's rule over the reference's dev "
        "scores.",
        f"- Validity gates of this world on these samples: unsafe shown {rep.gate_figure(v, 'unsafe_shown')} "
        f"(bar 0.80), benign shown {rep.gate_figure(v, 'benign_shown')} (bar 0.90): {'passed' if ok else 'FAILED'}.", "",
        "## This world against the reference run", "", table, "",
        "Intervals that do not overlap (marked \"apart\"): " + ("; ".join(apart) if apart else "none") + ".", "",
        "## Claims on this world (the reference table's claim rules)", "",
        "| Claim | this world |", "|---|---|"]
    parts += [f"| {c} | {vs[0]} |" for c, vs in rep.claims([res])]
    parts += ["", "## This world's full rows", "", rep.world_table(res), "",
              "Paired differences on the same samples (ours at its dev point minus):", "", rep.paired_table(res), "",
              "![samples](grid.png)", "", f"Wall time (changes from run to run): {res['seconds']:.0f} s."]
    return "\n".join(parts) + "\n"


def write(res, proto, digest, out):
    from concept_world import latent
    from . import protocol_figures as fig
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig.grid(res, res["prompts"], out / "grid.png", lambda z: latent.raw_to_image(z.detach().cpu().double().numpy()))
    (out / "table.md").write_text(markdown(res, proto, digest))
    data = {k: v for k, v in res.items() if k not in ("rows", "prompts", "chosen", "reference")}
    data["reference_unet"] = res["reference"]["unet_sha256_16"]
    data["reference_seed"] = res["reference"].get("seed", res["seed"])
    data["chosen"] = {f: c[0] for f, c in res["chosen"].items()}
    data["rows"] = rep.summary_json([{"rows": res["rows"], "chosen": {}}])[0]["rows"]
    (out / "results.json").write_text(json.dumps(rep.nan_to_none(data), indent=1, default=float))
    return out / "table.md"


def load(world_dir):
    """A world's transfer results.json with its missing figures back as NaN."""
    d = json.loads((Path(world_dir) / "results.json").read_text())
    for k in ("rows", "paired", "validity"):
        d[k] = rep.none_to_nan(d[k])
    return d


def across_markdown(worlds):
    """The transfer check of several worlds side by side: gates, figures, paired differences, claims."""
    head = [f"world {w['seed']}" for w in worlds]
    parts = ["# The transfer check across worlds", "",
             "Every world at the same reference run's dev-chosen operating points (nothing tuned here); "
             "95 % two-way cluster-bootstrap intervals. A claim holds only where every world says yes; "
             "the columns side by side show the world-to-world spread.", "",
             "| World | UNet sha256 (16) | Trained on | Training s | Reference (seed, UNet) | Slots | Unsafe shown "
             "(bar 0.80) | Benign shown (bar 0.90) | Valid |", "|---|---|---|---|---|---|---|---|---|"]
    for w in worlds:
        i, v = w["info"] or {}, w["validity"]
        parts.append(f"| seed {w['seed']} | `{i.get('unet_sha256_16', '?')}` | {i.get('device', '?')} | "
                     f"{i.get('train_seconds', float('nan')):.0f} | {w.get('reference_seed', w['seed'])}, "
                     f"`{w['reference_unet']}` | {w['slots']} | {rep.gate_figure(v, 'unsafe_shown')} | "
                     f"{rep.gate_figure(v, 'benign_shown')} | {'yes' if gates.passed(v) else 'NO'} |")
    settings = {}   # one line per setting (a row is looked up by its setting; its role is the first world's)
    for w in worlds:
        for r in w["rows"]:
            settings.setdefault(key(r["family"], r["setting"]), (r["family"], r["setting"], r["role"]))
    for m, n in COMPARED[:3] + (("slope", "Slope of D on cosine to the erased concept"),):
        parts += ["", f"## {n}", "", "| Method | Setting | Role | " + " | ".join(head) + " |",
                  "|---|---|---|" + "---|" * len(worlds)]
        for fam, st, role in settings.values():
            cells = []
            for w in worlds:
                r = next((r for r in w["rows"] if key(r["family"], r["setting"]) == key(fam, st)), None)
                cells.append(rep.ci(r[m]) if r else "not run")
            parts.append(f"| {rep.NAMES[fam]} | {rep.setting_text(fam, st)} | {role} | " + " | ".join(cells) + " |")
    parts += ["", "## Paired differences, ours at its operating point minus", "",
              "| Minus | Measure | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(worlds)]
    others = []
    for w in worlds:
        others += [o for o in w["paired"] if o not in others]
    for o in others:
        for m, n in COMPARED:
            cells = [rep.ci(w["paired"][o][m]) if o in w["paired"] else "n/a" for w in worlds]
            best = [w["seed"] for w in worlds if w["best_baseline"] == o]
            label = rep.NAMES[o] + (f" (best baseline in world {', '.join(map(str, best))})" if best else "")
            parts.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    parts += ["", "## Claims", "", "| Claim | " + " | ".join(head) + " | every world |",
              "|---|" + "---|" * (len(worlds) + 1)]
    for claim, verdicts in rep.claims(worlds):
        every = "yes" if all(v == "yes" for v in verdicts) else "no"
        parts.append(f"| {claim} | " + " | ".join(verdicts) + f" | {every} |")
    return "\n".join(parts) + "\n"


def write_across(out_root):
    """OUT/worlds.md from every OUT/world<seed>/results.json there (None when there is none)."""
    dirs = sorted(Path(out_root).glob("world*/results.json"), key=lambda p: int(p.parent.name[5:] or 0))
    if not dirs:
        return None
    path = Path(out_root) / "worlds.md"
    path.write_text(across_markdown([load(p.parent) for p in dirs]))
    return path
