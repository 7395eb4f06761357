"""Dev tuning of the concept-world protocol: every family's candidates run and scored, and the
protocol's selection rule (protocol.json "selection"), the same for every method."""
import json
import time

import numpy as np

from . import disruption, stats
from .protocol_run import key

BASELINES = ("negative", "sld", "uce")


def measure(run, ref, prompts, slots, groups):
    return disruption.grids(prompts, slots, run["analyses"], ref["analyses"], groups, run.get("cells"),
                            ref.get("cells"))


def run_setting(split, family, st, bases):
    """One setting's run. Ours at_end (global) is merged from its two branches at the setting's
    weight with the pack's formula; the branches run once per (context, mode, tau), kept in `bases`."""
    if family == "ours" and st["merge"] == "at_end" and "region_mode" not in st:
        bk = (st["context"], st["mode"], st["threshold"])
        if bk not in bases:
            bases[bk] = split.run("ours", dict(st, weight=0.5))
        return split.merged(bases[bk], st["weight"])
    return split.run(family, st)


def run_candidates(split, family, candidates, log, runs=None, bases=None):
    """{key: run} for every candidate (those already in `runs` are kept, not run again; at_end
    branches already in `bases` are reused)."""
    runs, bases = dict(runs or {}), ({} if bases is None else bases)
    for st in candidates:
        if key(family, st) in runs:
            continue
        t0 = time.perf_counter()
        runs[key(family, st)] = r = run_setting(split, family, st, bases)
        reused = " (run cache)" if r.get("cached") else ""
        log(f"[protocol]   {family} {st}: {time.perf_counter() - t0:.1f} s{reused}")
    return runs


def select(scores, max_disruption):
    """The protocol's rule: lowest unsafe rate among candidates with D <= max; else lowest D.
    scores: [(key, unsafe rate, D)]."""
    ok = [s for s in scores if np.isfinite(s[2]) and s[2] <= max_disruption]
    if ok:
        return min(ok, key=lambda s: (s[1], s[2]))[0]
    return min(scores, key=lambda s: (s[2] if np.isfinite(s[2]) else 9, s[1]))[0]


def coarse_stage(cands, coarse):
    """Stage 1 of a coarse-to-fine search: the candidates at the coarse values of the keys they
    carry (e.g. weight 0.5 and threshold 0.2: one per context, mode and merge); all of them when
    none sits at the coarse point."""
    return [st for st in cands if all(st[k] == v for k, v in coarse.items() if k in st)] or list(cands)


def fine_stage(cands, best, coarse):
    """Stage 2: every candidate that shares the stage-1 choice's other keys (its context, mode
    and merge), over all values of the coarse keys."""
    return [st for st in cands if all(st[k] == v for k, v in best.items() if k not in coarse)]


def tune(split, proto, groups, log, families=None):
    """Dev: {family: (chosen setting, [(setting, unsafe, D)])} and the reference validity. A
    protocol with "dev_search" tunes its families coarse to fine: the rule picks among the
    stage-1 candidates, then among everything run once that choice's stage 2 has run too."""
    ref = split.run("none", {})
    search = proto.get("dev_search", {})
    rule = proto["selection"]["max_disruption"]
    out = {}
    for family, cands in proto["candidates"].items():
        if families and family not in families:
            continue

        def scored(sts, runs):
            res = []
            for st in sts:
                g = measure(runs[key(family, st)], ref, split.prompts, split.slots, groups)
                res.append((key(family, st), stats.ratio(*g["unsafe"]), stats.ratio(*g["D_benign"])))
            return res

        if family in search.get("families", ()):
            coarse = search["coarse"]
            first, bases = coarse_stage(cands, coarse), {}
            runs = run_candidates(split, family, first, log, bases=bases)
            best = json.loads(select(scored(first, runs), rule).split("|", 1)[1])
            ran = first + [st for st in fine_stage(cands, best, coarse) if st not in first]
            runs = run_candidates(split, family, ran, log, runs, bases)
        else:
            ran, runs = cands, run_candidates(split, family, cands, log)
        scores = scored(ran, runs)
        chosen = select(scores, rule)
        out[family] = (json.loads(chosen.split("|", 1)[1]), scores)
        log(f"[protocol] dev choice for {family}: {out[family][0]}")
    return out, ref


def dev_point(family, setting, scores):
    """(family, dev unsafe rate, dev D) of `setting` among a family's dev scores [(key, unsafe, D)]."""
    k = key(family, setting)
    return (family,) + tuple(next(s[1:] for s in scores if s[0] == k))


def best_baseline(dev, max_disruption):
    """The protocol's rule again, over the baselines' dev points: dev {family: (chosen setting,
    its dev scores)}; None when no baseline was tuned."""
    points = [dev_point(f, *dev[f]) for f in BASELINES if f in dev]
    return select(points, max_disruption) if points else None
