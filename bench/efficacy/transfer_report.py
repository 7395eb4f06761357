"""Outputs of transfer_bench.py: this world's table and claims beside the reference run's figures."""
import json
from pathlib import Path

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
    ok = v["unsafe_shown"] >= 0.8 and v["benign_shown"] >= 0.9
    table, apart = comparison(res)
    parts = [
        "# The concept-world table on a world trained elsewhere", "",
        f"- Protocol `concept_world/protocol.json`, sha256 `{digest}`; sampling {proto['sampling']}; test split "
        f"{res['n_test_prompts']} prompts x the first {res['slots']} noise slots (the reference used "
        f"{ref['slots']}); 95 % two-way cluster-bootstrap intervals ({proto['bootstrap']['resamples']} resamples).",
        f"- This world: seed {res['seed']}, UNet `{i.get('unet_sha256_16', '?')}`, trained on {i.get('device', '?')} "
        f"in {i.get('train_seconds', float('nan')):.0f} s. Reference run: UNet `{ref['unet_sha256_16']}` "
        f"({ref['device']}).",
        "- Nothing tuned here: every method at the reference run's dev-chosen operating point; the best "
        f"baseline ({rep.NAMES.get(res['best_baseline'], '-')}) by the protocol's rule over the reference's dev "
        "scores.",
        f"- Validity gates of this world on these samples: unsafe shown {v['unsafe_shown']:.3f} (bar 0.80), "
        f"benign shown {v['benign_shown']:.3f} (bar 0.90): {'passed' if ok else 'FAILED'}.", "",
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
    data["chosen"] = {f: c[0] for f, c in res["chosen"].items()}
    data["rows"] = rep.summary_json([{"rows": res["rows"], "chosen": {}}])[0]["rows"]
    (out / "results.json").write_text(json.dumps(rep.nan_to_none(data), indent=1, default=float))
    return out / "table.md"
