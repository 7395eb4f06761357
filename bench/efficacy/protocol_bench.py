"""The concept-world protocol end to end: tune every method on dev, evaluate on test, with
cluster-bootstrap intervals, for each independently trained world.

    python -m bench.efficacy.protocol_bench [--worlds 0,1] [--out DIR] [--small]   (make bench-efficacy)

Tuning (dev): each family's candidates (protocol.json) are run and scored by the same rule
(protocol["selection"]). Test: each family at its dev-chosen operating point, plus its curve
(ours: the weight at the chosen context, mode, merge and tau; SLD: every preset; UCE: every
preserve/lambda at the chosen target). Nothing on test feeds back into any choice.
"""
import json
import time
from pathlib import Path

from .protocol_eval import evaluate_test, paired, test_settings
from .protocol_run import SplitRun, add_run_cache_option, run_cache_dir
from .protocol_tune import BASELINES, best_baseline, tune


def concept_groups(proto):
    return {"heldout": set(proto["heldout_proximal"]), "dev": set(proto["dev_proximal"]), "far": set(proto["far"])}


def erased_cosines(split):
    """{benign concept: max cosine to an unsafe concept} in the world's text-encoder space
    (concept_world.semantics, through the host's own CLIPTextEncode path)."""
    from concept_world import scenes, semantics

    def encode(text):
        return split.encode(text)[0][0][0].float()

    def n_tokens(text):
        return _word_tokens(split.clip, text)

    out = {}
    for c in scenes.CONCEPTS:
        if c in scenes.UNSAFE:
            continue
        out[c] = max(semantics.cosine(semantics.concept_vector(encode, n_tokens, c),
                                      semantics.concept_vector(encode, n_tokens, u)) for u in scenes.UNSAFE)
    return out


def _word_tokens(clip, text):
    ids = [t for t, _ in clip.tokenize(text)["l"][0]]
    return ids.index(49407) - 1   # tokens between the start token and the first end token


def world_results(host, proto, seed, log=print, families=None, prompts=None, slots=None, checkpoint=None,
                  run_cache=None, operating_only=False):
    from concept_world import world_module
    build = world_module(proto.get("arch", "sd15"))
    name = checkpoint or build.checkpoint_name(seed)
    groups = concept_groups(proto)
    t0 = time.time()
    dev = SplitRun(host, name, proto, "dev", log, prompts=prompts and prompts["dev"], slots=slots, run_cache=run_cache)
    chosen, dev_ref = tune(dev, proto, groups, log, families)
    dev_seconds = time.time() - t0
    test = SplitRun(host, name, proto, "test", log, prompts=prompts and prompts["test"], slots=slots,
                    run_cache=run_cache)
    cosines = erased_cosines(test)
    from .protocol_run import node_inputs
    rows, validity, draws = evaluate_test(test, proto, groups, test_settings(chosen, node_inputs(host), operating_only),
                                          cosines, log)
    level = proto["bootstrap"]["level"]
    ops = {r["family"]: r for r in rows if r["role"] == "operating point"}
    best = best_baseline({f: chosen[f] for f in BASELINES if f in ops}, proto["selection"]["max_disruption"])
    diffs = {}
    if "ours" in ops:
        for other in ([best] if best else []) + ["context", "switch"]:
            if other in ops:
                diffs[other] = paired(ops["ours"], ops[other], draws, level)
    return {"seed": seed, "checkpoint": name, "info": build.world_info(seed), "chosen": chosen,
            "rows": rows, "validity": validity, "best_baseline": best, "paired": diffs, "cosines": cosines,
            "dev_seconds": dev_seconds, "seconds": time.time() - t0, "n_test_prompts": len(test.prompts),
            "slots": test.slots, "test_rows": "operating points" if operating_only else "operating points and curves"}


def small_prompts(proto, per_kind=1):
    """A few prompts of every kind from each split (tests and quick checks)."""
    out = {}
    for split, ps in proto["splits"].items():
        picked, seen = [], {}
        for p in ps:
            if seen.get(p["kind"], 0) < per_kind:
                seen[p["kind"]] = seen.get(p["kind"], 0) + 1
                picked.append(p)
        out[split] = picked
    return out


def small_protocol(proto, steps=4):
    """The protocol on small settings: few steps, one candidate per family and dev-tuning over
    two of ours (tests)."""
    small = json.loads(json.dumps(proto))
    small["sampling"]["steps"] = steps
    c = small["candidates"]
    c["sld"] = c["sld"][1:2]
    c["uce"] = [u for u in c["uce"] if u["lam"] == 0.1 and u["target"] == ""]
    c["context"] = c["context"][:1]
    c["switch"] = c["switch"][:1]
    c["ours"] = [o for o in c["ours"] if o["context"] == "empty" and o["mode"] == "append" and o["threshold"] == 0.2
                 and o["weight"] == 0.5]
    small["bootstrap"]["resamples"] = 50
    return small


def write_outputs(results, proto, digest, out, log=print, add=False):
    """table.md, results.json and the figures in `out`; with `add`, the worlds already in
    out/results.json that this run did not redo are kept (the grid shows a world of this run)."""
    from concept_world import latent
    from . import protocol_figures as fig
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sampled = results[0]
    space = latent.SPACES[proto.get("arch", "sd15")]
    fig.grid(sampled, sampled["prompts"], out / "grid.png",
             lambda z: latent.raw_to_image(z.detach().cpu().double().numpy(), cell=8 // space.per_cell, space=space))
    return _write_tables(results, proto, digest, out, log, add)


def _write_tables(results, proto, digest, out, log, add):
    """table.md, results.json and the two plots (everything but the grid, which needs samples)."""
    from concept_world import detect
    from . import protocol_figures as fig, protocol_report as rep
    if add:
        results = rep.with_earlier_worlds(results, out / "results.json")
    fig.tradeoff_plot(results, out / "tradeoff.png")
    fig.proximity_plot(results, out / "disruption_vs_proximity.png")
    text = rep.markdown(results, proto, digest, detect.heldout_accuracy(), None)
    (out / "table.md").write_text(text)
    (out / "results.json").write_text(json.dumps(rep.nan_to_none(rep.summary_json(
        [{k: v for k, v in r.items() if k != "prompts"} for r in results])), indent=1, default=float))
    log(text)
    return out / "table.md"


def merge_outputs(dirs, proto, digest, out, log=print, add=False):
    """One table from worlds run apart (one process per world, each writing its own folder):
    the worlds of every dirs[i]/results.json, in seed order, and the grid of the first folder
    that has one. With `add`, worlds of out/results.json that no folder redid are kept."""
    import shutil
    from . import protocol_report as rep
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for d in dirs:
        path = Path(d) / "results.json"
        if not path.exists():
            raise FileNotFoundError(f"--merge: {path} is missing (did that world's run fail?)")
        results += [rep.from_summary(w) for w in json.loads(path.read_text())]
    seeds = [r["seed"] for r in results]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--merge: a world appears in more than one folder (seeds {seeds})")
    results.sort(key=lambda r: r["seed"])
    grid = next((Path(d) / "grid.png" for d in dirs if (Path(d) / "grid.png").exists()), None)
    if grid is not None and grid.resolve() != (out / "grid.png").resolve():
        shutil.copyfile(grid, out / "grid.png")
    return _write_tables(results, proto, digest, out, log, add)


def main(argv=None):
    import argparse
    import sys
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--worlds", default=None, help="training seeds of the worlds (default: the protocol's)")
    ap.add_argument("--arch", choices=("sd15", "mmdit"), default="sd15",
                    help="the worlds' architecture: sd15 (protocol.json) or mmdit (protocol_mmdit.json)")
    ap.add_argument("--out", default=None,
                    help="default: bench/results/efficacy (sd15) or bench/results/efficacy_mmdit (mmdit)")
    ap.add_argument("--small", action="store_true", help="small settings (a few prompts, steps and candidates)")
    ap.add_argument("--slots", type=int, default=None, help="noise slots per prompt (default: the protocol's)")
    ap.add_argument("--add", action="store_true",
                    help="keep the worlds of OUT/results.json that this run does not redo (one world per call)")
    ap.add_argument("--operating-only", action="store_true",
                    help="test only the reference and each method's dev-chosen operating point (no curve rows)")
    add_run_cache_option(ap)
    ap.add_argument("--merge", nargs="+", metavar="DIR", default=None,
                    help="sample nothing: write OUT from the results.json of these folders (worlds run apart)")
    a = ap.parse_args(argv)
    root = Path(__file__).resolve().parents[2]
    for p in (str(root), str(root / "scripts")):
        if p not in sys.path:
            sys.path.insert(0, p)
    from comfy_host import InProcessHost
    from concept_world import protocol, world_module
    build = world_module(a.arch)
    a.out = a.out or str(root / "bench" / "results" / ("efficacy" if a.arch == "sd15" else "efficacy_mmdit"))
    proto, digest = protocol.load(a.arch)
    prompts = None
    if a.small:
        proto, prompts = small_protocol(proto), small_prompts(proto)
    if a.merge:
        merge_outputs(a.merge, proto, digest, a.out, log=lambda *_: None, add=a.add)
        results = json.loads((Path(a.out) / "results.json").read_text())
        print(f"[protocol] merged {len(a.merge)} folders into {a.out}: worlds {[r['seed'] for r in results]}")
        return _gates_verdict(results)
    host = InProcessHost()
    run_cache = run_cache_dir(a.run_cache)
    seeds = [int(s) for s in a.worlds.split(",")] if a.worlds else proto["world_seeds"]
    results = []
    for seed in seeds:
        build.ensure_world(host.root, seed)
        res = world_results(host, proto, seed, prompts=prompts, slots=a.slots, run_cache=run_cache,
                            operating_only=a.operating_only)
        res["prompts"] = prompts["test"] if prompts else proto["splits"]["test"]
        results.append(res)
        write_outputs(results, proto, digest, a.out, add=a.add)   # after every world: a cut-short run keeps them
    return _gates_verdict(results)


def _gates_verdict(results):
    from concept_world import gates
    ok = all(gates.passed(r["validity"]) for r in results)
    print(f"[protocol] validity gates on the test split: {'passed' if ok else 'FAILED'} in every world")
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(main())
