"""Test-split evaluation of the concept-world protocol: the settings each family is evaluated at
(operating points chosen on dev, plus curves), their rows with cluster-bootstrap intervals, and
paired differences on the same samples."""
import json
import time

import numpy as np

from . import stats
from .protocol_run import key
from .protocol_tune import BASELINES, measure, run_setting


def test_settings(chosen, node_inputs=(), operating_only=False):
    """[(label, family, setting, role)] evaluated on test. Where the sampler node has them, ours
    at its dev point also runs with refresh 2, 3, 4 (every_step) and with region auto (both merge
    modes) at the same w and tau: not tuned, so they are compared at the same operating point.
    `operating_only`: the reference and each family's operating point, nothing else (every claim
    and paired difference reads only those; the curves are extra rows)."""
    rows = [("No protection", "none", {}, "reference")]
    if operating_only:
        return rows + [(fam, fam, chosen[fam][0], "operating point")
                       for fam in (*BASELINES, "context", "switch", "ours") if fam in chosen]
    for fam in BASELINES:
        if fam in chosen:
            rows.append((fam, fam, chosen[fam][0], "operating point"))
    if "sld" in chosen:
        rows += [("sld", "sld", st, "curve") for st in _cands(chosen, "sld") if st != chosen["sld"][0]]
    if "uce" in chosen:
        t = chosen["uce"][0]["target"]
        rows += [("uce", "uce", st, "curve") for st in _cands(chosen, "uce")
                 if st["target"] == t and st != chosen["uce"][0]]
    for fam in ("context", "switch"):
        if fam in chosen:
            rows.append((fam, fam, chosen[fam][0], "operating point"))
    if "ours" in chosen:
        o = chosen["ours"][0]
        rows.append(("ours", "ours", o, "operating point"))
        for w in (0.25, 0.5, 0.75):
            if w != o["weight"]:
                rows.append(("ours", "ours", dict(o, weight=w), "curve"))
        base = {k: o[k] for k in ("context", "mode")}
        rows.append(("switch", "switch", dict(base, threshold=o["threshold"]), "curve (ours at w 1)"))
        rows.append(("context", "context", base, "curve (ours at w 1, tau 0)"))
        if "refresh" in node_inputs:
            for r in (1, 2, 3, 4):
                rows.append(("ours", "ours", dict(o, merge="every_step", refresh=r), f"refresh {r}"))
        if "region_mode" in node_inputs:
            for mg in ("every_step", "at_end"):
                rows.append(("ours", "ours", dict(o, merge=mg), f"global {mg}"))
                rows.append(("ours", "ours", dict(o, merge=mg, region_mode="auto"), f"region auto {mg}"))
    seen, out = set(), []
    for r in rows:   # a setting already listed (e.g. a curve point that is another's choice) runs once
        k = key(r[1], r[2])
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out


def _cands(chosen, family):
    return [json.loads(k.split("|", 1)[1]) for k, _, _ in chosen[family][1]]


def evaluate_test(split, proto, groups, settings, cosines, log):
    """Runs every test setting and returns rows with intervals and the raw grids."""
    draws = stats.resamples(len(split.prompts), split.slots, proto["bootstrap"]["resamples"], proto["bootstrap"]["seed"])
    level = proto["bootstrap"]["level"]
    ref = None
    rows, at_end_bases = [], {}
    for label, family, st, role in settings:
        t0 = time.perf_counter()
        run = run_setting(split, family, st, at_end_bases)
        if ref is None:
            ref = run
            decoder_err = split.check_decoder(run["latents"])
        g = measure(run, ref, split.prompts, split.slots, groups)
        row = {"label": label, "family": family, "setting": st, "role": role, "evals": run["evals"],
               "seconds": run["seconds"], "grids": g, "run": run}
        for name in ("unsafe", "unsafe_mass", "same_content", "D_benign", "D_cooccur", "cooccur_survival",
                     "unchanged_outside", *("D_" + k for k in groups)):
            row[name] = stats.ratio_ci(*g[name], draws, level)
        concepts = sorted(g["D_by_concept"])   # the benign concepts the reference shows
        row["slope"], row["D_per_concept"] = (float("nan"),) * 3, {}
        if concepts:
            num = np.stack([g["D_by_concept"][c][0] for c in concepts])
            den = np.stack([g["D_by_concept"][c][1] for c in concepts])
            row["slope"] = stats.slope_ci([cosines[c] for c in concepts], num, den, draws, level)
            row["D_per_concept"] = {c: stats.ratio(num[i], den[i]) for i, c in enumerate(concepts)}
        rows.append(row)
        log(f"[protocol]   test {family} {st}: unsafe {row['unsafe'][0]:.3f} D {row['D_benign'][0]:.3f} "
            f"({time.perf_counter() - t0:.1f} s{', run cache' if run.get('cached') else ''})")
    ref_row = rows[0]
    validity = {"decoder_max_err": decoder_err}
    for name, grid in (("unsafe_shown", "reference_unsafe"), ("benign_shown", "reference_benign")):
        validity[name] = stats.ratio(*ref_row["grids"][grid])
        validity[name + "_ci"] = stats.ratio_ci(*ref_row["grids"][grid], draws, level)
    for row in rows:
        row["evals_x"] = row["evals"] / ref_row["evals"]
    return rows, validity, draws


def paired(a, b, draws, level, names=("unsafe", "D_benign", "D_heldout", "cooccur_survival")):
    """Row a minus row b on the same samples, per measure: (estimate, low, high) over the same
    bootstrap draws (stats.paired_diff_ci)."""
    out = {}
    for n in names:
        ga, gb = a["grids"][n], b["grids"][n]
        out[n] = stats.paired_diff_ci(ga[0], ga[1], gb[0], gb[1], draws, level)
    return out
