"""Protect only the region (issue 13), measured on the concept world: ours with the global merge
against ours with `region_mode auto`, at one operating point, on the test split's
co-occurrence prompts ("blood and a blue ball on the floor"): does the benign co-object survive,
is the rest of the picture left alone, and is the unsafe rate kept?

    python -m bench.efficacy.region_bench [--world 0] [--out DIR] [--slots N] [--setting JSON]
    (make bench-region; writes bench/results/region/world<seed>/)

Nothing is tuned here. The operating point (context, mode, w, tau) is ours' dev choice in the
frozen protocol's committed results (bench/results/efficacy/results.json) for the same world
seed, else for world 0, else --setting; the table says which. Rows: no protection, then for each
merge mode the global method and region auto at that point (region_threshold: the node's default).
Per row, with 95 % two-way cluster-bootstrap intervals over prompts and noise slots: the unsafe
rate, co-object survival (presence) and D of the co-object (presence x colour x IoU against the
unprotected sample), the share of cells outside the reference's unsafe objects left unchanged,
the region's area and how much of the reference's unsafe cells it covers; paired differences
region minus global on the same samples.
"""
import json
import time
from pathlib import Path

import numpy as np

from . import protocol_bench, protocol_eval, stats
from .protocol_run import SplitRun, add_run_cache_option, run_cache_dir

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_RESULTS = ROOT / "bench" / "results" / "efficacy" / "results.json"
DEFAULT_OUT = ROOT / "bench" / "results" / "region"
MEASURES = ("unsafe", "cooccur_survival", "D_cooccur", "unchanged_outside", "region_area", "unsafe_covered")
CELL = 8   # pixels per latent cell in the concept world


def operating_point(seed, results_path=PROTOCOL_RESULTS):
    """(ours' dev-chosen setting, where it comes from) from the committed protocol results."""
    if not Path(results_path).exists():
        return None, None
    worlds = {w["seed"]: w for w in json.loads(Path(results_path).read_text())}
    for s in (seed, 0):
        w = worlds.get(s)
        if w and "ours" in (w.get("chosen") or {}):
            st = w["chosen"]["ours"]
            sha = (w.get("info") or {}).get("unet_sha256_16", "?")
            return {k: st[k] for k in ("context", "mode", "weight", "threshold")}, \
                f"ours' dev choice in the protocol run of world seed {s} (UNet `{sha}`)"
    return None, None


def settings(point):
    """[(label, family, setting, role)]: the reference, then global and region auto per merge mode."""
    rows = [("No protection", "none", {}, "reference")]
    for merge in ("every_step", "at_end"):
        rows.append(("ours", "ours", dict(point, merge=merge), f"global {merge}"))
        rows.append(("ours", "ours", dict(point, merge=merge, region_mode="auto"), f"region auto {merge}"))
    return rows


def region_cells(region):
    """Pixel MASK [B, H, W] -> per-cell mean [B, H/8, W/8] (numpy)."""
    r = np.asarray(region, dtype=np.float64)
    b, h, w = r.shape
    return r.reshape(b, h // CELL, CELL, w // CELL, CELL).mean(axis=(2, 4))


def region_grids(prompts, n_slots, region, ref_analyses):
    """(num, den) grids (P, S): the region's area (share of the image) and the share of the
    reference's unsafe cells it covers. A global row acts everywhere: area 1, coverage 1."""
    P = len(prompts)
    area, cover = (np.zeros((P, n_slots)), np.zeros((P, n_slots))), (np.zeros((P, n_slots)), np.zeros((P, n_slots)))
    cells = region_cells(region) if region is not None else None
    for s in range(n_slots):
        for p, pr in enumerate(prompts):
            n = s * P + p
            m = cells[n] if cells is not None else None
            area[0][p, s] += 1.0 if m is None else float(m.mean())
            area[1][p, s] += 1
            for c in pr["unsafe"]:
                if c in ref_analyses[n]:
                    cm = ref_analyses[n][c]["mask"]
                    cover[0][p, s] += float(cm.sum()) if m is None else float((m * cm).sum())
                    cover[1][p, s] += float(cm.sum())
    return {"region_area": area, "unsafe_covered": cover}


def run(host, proto, seed=0, checkpoint=None, point=None, source=None, prompts=None, slots=None, log=print,
        run_cache=None):
    from concept_world import build
    name = checkpoint or build.checkpoint_name(seed)
    prompts = prompts or [p for p in proto["splits"]["test"] if p["kind"] == "cooccur"]
    t0 = time.time()
    split = SplitRun(host, name, proto, "test", log, prompts=prompts, slots=slots, run_cache=run_cache)
    groups = protocol_bench.concept_groups(proto)
    rows, validity, draws = protocol_eval.evaluate_test(split, proto, groups, settings(point), {}, log)
    level = proto["bootstrap"]["level"]
    ref = rows[0]
    for r in rows:
        g = region_grids(split.prompts, split.slots, r["run"].get("region"), ref["run"]["analyses"])
        r["grids"].update(g)
        for k, v in g.items():
            r[k] = stats.ratio_ci(*v, draws, level)
    paired = {}
    for merge in ("every_step", "at_end"):
        glob = next(r for r in rows if r["role"] == f"global {merge}")
        reg = next(r for r in rows if r["role"] == f"region auto {merge}")
        paired[merge] = protocol_eval.paired(reg, glob, draws, level, names=MEASURES[:4])
    return {"seed": seed, "checkpoint": name, "info": build.world_info(seed), "point": point, "source": source,
            "rows": rows, "paired": paired, "validity": validity, "prompts": split.prompts, "slots": split.slots,
            "seconds": time.time() - t0, "sampling": proto["sampling"]}


def main(argv=None):
    import argparse
    import sys
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", type=int, default=0, help="training seed of the world")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="writes to OUT/world<seed>/")
    add_run_cache_option(ap)
    ap.add_argument("--slots", type=int, default=None, help="noise slots per prompt (default: the protocol's)")
    ap.add_argument("--protocol-results", default=str(PROTOCOL_RESULTS),
                    help="the protocol run's results.json that gives ours' dev choice (default: the committed one)")
    ap.add_argument("--setting", default=None, help='JSON {"context", "mode", "weight", "threshold"} '
                                                    "(default: ours' dev choice in the protocol results)")
    a = ap.parse_args(argv)
    for p in (str(ROOT), str(ROOT / "scripts")):
        if p not in sys.path:
            sys.path.insert(0, p)
    from comfy_host import InProcessHost
    from concept_world import build, protocol
    from . import region_report
    proto, digest = protocol.load()
    point, source = operating_point(a.world, a.protocol_results)
    if a.setting:
        point, source = json.loads(a.setting), "given with --setting"
    if point is None:
        raise SystemExit("no operating point: run the protocol first (make bench-efficacy) or pass --setting")
    host = InProcessHost()
    build.ensure_world(host.root, a.world)
    res = run(host, proto, a.world, point=point, source=source, slots=a.slots, run_cache=run_cache_dir(a.run_cache))
    path = region_report.write(res, proto, digest, Path(a.out) / f"world{a.world}")
    print(Path(path).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
