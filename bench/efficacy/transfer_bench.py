"""Does a protocol run's table carry over to a world trained elsewhere? Every method at the
operating point that a committed protocol run chose on dev, evaluated on the test split of
another copy of the world (the same recipe trained on another machine: other floats, other
weights), with intervals, the same paired differences and the same claims.

    python -m bench.efficacy.transfer_bench [--world 0] [--reference-seed S] [--slots 3] [--extra JSON] [--out DIR]
    (make bench-transfer; writes bench/results/transfer/world<seed>/)

Nothing is tuned here: the operating points and the best baseline come from the reference run
(bench/results/efficacy/results.json, the same world seed unless --reference-seed names
another: then another world's dev choices are applied, which the protocol itself never does,
and the report says so), the best baseline by the protocol's
rule over the reference's dev scores. `--slots` keeps the first noise slots of the protocol's
(slot-major batch: the same initial noise as the protocol's first slots; the samples agree up to
the CPU kernels' batch-size rounding). `--extra` adds rows, a JSON list of [family, setting].
This is a check of one table against one retrained world, not the protocol: it has no dev
tuning of its own.
"""
import json
import time
from pathlib import Path

from . import protocol_bench, protocol_eval, protocol_tune
from .protocol_run import SplitRun, add_run_cache_option, key, run_cache_dir

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "bench" / "results" / "efficacy" / "results.json"
DEFAULT_OUT = ROOT / "bench" / "results" / "transfer"
FAMILIES = ("negative", "sld", "uce", "context", "switch", "ours")


def reference_world(seed, path=REFERENCE):
    worlds = {w["seed"]: w for w in json.loads(Path(path).read_text())}
    if seed not in worlds:
        raise SystemExit(f"--world {seed}: the reference run {path} has no world seed {seed} "
                         f"(it has {sorted(worlds)})")
    return worlds[seed]


def best_baseline(ref, max_disruption):
    """The protocol's rule over the baselines' dev points, on the reference run's dev scores."""
    return protocol_tune.best_baseline({f: (st, ref["dev_scores"][f]) for f, st in ref["chosen"].items()
                                        if f in protocol_tune.BASELINES},
                                       max_disruption)


def settings(chosen, extra=()):
    """[(label, family, setting, role)]: the reference, each family's operating point, extras."""
    rows = [("No protection", "none", {}, "reference")]
    rows += [(f, f, chosen[f], "operating point") for f in FAMILIES if f in chosen]
    rows += [(f, f, st, "extra") for f, st in extra if key(f, st) not in {key(r[1], r[2]) for r in rows}]
    return rows


def run(host, proto, ref, checkpoint, seed=0, slots=None, extra=(), prompts=None, log=print, run_cache=None):
    from concept_world import build
    t0 = time.time()
    split = SplitRun(host, checkpoint, proto, "test", log, prompts=prompts, slots=slots, run_cache=run_cache)
    groups = protocol_bench.concept_groups(proto)
    cosines = protocol_bench.erased_cosines(split)
    rows, validity, draws = protocol_eval.evaluate_test(split, proto, groups, settings(ref["chosen"], extra),
                                                         cosines, log)
    level = proto["bootstrap"]["level"]
    best = best_baseline(ref, proto["selection"]["max_disruption"])
    ops = {r["family"]: r for r in rows if r["role"] == "operating point"}
    diffs = {o: protocol_eval.paired(ops["ours"], ops[o], draws, level)
             for o in ([best] if best else []) + ["context", "switch"] if o in ops and "ours" in ops}
    return {"seed": seed, "checkpoint": checkpoint, "info": build.world_info(seed), "rows": rows,
            "validity": validity, "best_baseline": best, "paired": diffs, "cosines": cosines,
            "n_test_prompts": len(split.prompts), "slots": split.slots, "prompts": split.prompts,
            "chosen": {f: (st, []) for f, st in ref["chosen"].items()}, "seconds": time.time() - t0,
            "reference": {"seed": ref["seed"], "unet_sha256_16": (ref.get("info") or {}).get("unet_sha256_16"),
                          "device": (ref.get("info") or {}).get("device"), "slots": ref.get("slots"),
                          "rows": {key(r["family"], r["setting"]): r for r in ref["rows"]}}}


def main(argv=None):
    import argparse
    import sys
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", type=int, default=0, help="training seed of the world (and of the reference)")
    ap.add_argument("--slots", type=int, default=3, help="the first N noise slots of the protocol's")
    ap.add_argument("--reference-seed", type=int, default=None,
                    help="the reference run's world whose dev choices are applied (default: --world)")
    ap.add_argument("--extra", default="[]", help='JSON list of [family, setting] rows to add')
    ap.add_argument("--reference", default=str(REFERENCE), help="the protocol run's results.json")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="writes to OUT/world<seed>/")
    add_run_cache_option(ap)
    a = ap.parse_args(argv)
    try:
        extra = [(f, dict(st)) for f, st in json.loads(a.extra)]
    except (ValueError, TypeError) as e:
        raise SystemExit(f"--extra: expected a JSON list of [family, setting] pairs, got {a.extra!r} ({e})")
    for p in (str(ROOT), str(ROOT / "scripts")):
        if p not in sys.path:
            sys.path.insert(0, p)
    from comfy_host import InProcessHost
    from concept_world import build, protocol
    from . import transfer_report
    proto, digest = protocol.load()
    ref_seed = a.world if a.reference_seed is None else a.reference_seed
    ref = reference_world(ref_seed, a.reference)
    host = InProcessHost()
    build.ensure_world(host.root, a.world)
    res = run(host, proto, ref, build.checkpoint_name(a.world), a.world, a.slots, extra,
              run_cache=run_cache_dir(a.run_cache))
    path = transfer_report.write(res, proto, digest, Path(a.out) / f"world{a.world}")
    print(Path(path).read_text())
    print(f"[transfer] every world of {a.out} side by side: {transfer_report.write_across(a.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
