"""The content check (issue 23) on the transformer worlds, by the frozen addendum
concept_world/protocol_content.json:

    python -m bench.efficacy.content_bench [--addendum v1..v8] [--small] [--out DIR] [--run-cache]

Dev: the content method's candidates (the addendum's two-stage search) run on the dev split and the
base protocol's selection rule picks one. Test: the unprotected reference, every baseline at the
dev point the base protocol's committed run chose, ours global and region auto at ours' point, the
content method at its dev point with the in-loop cell detector, and the same setting with the
scorer itself in the loop (an oracle upper bound, labelled so); in v4 every other stage-1
candidate too, as curve rows; from v7 on only the baselines the addendum names (`test_families`).
Reports per prompt type, benign
untouched (bit for bit), locality, paired differences and cost.
"""
import hashlib
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from . import stats
from .disruption import BENIGN_KINDS
from .protocol_eval import evaluate_test, paired
from .protocol_run import SplitRun, add_run_cache_option, run_cache_dir
from .protocol_tune import measure, run_candidates, select

ROOT = Path(__file__).resolve().parents[2]
# the addenda, each frozen by sha256 before its results (v2 was written after v1's, see its note)
ADDENDA = {"v1": ("protocol_content.json", "c4c5a1da8dc549ea89571faef329e77ff537139759b01ef3cff507abd128332f"),
           "v2": ("protocol_content_v2.json", "8f1a665c06c2313f14a90e594d299af4305fc9c1d0bdec4ee88ce6b6e0a98760"),
           "v3": ("protocol_content_v3.json", "a657ce79e71f1477bfad119d96c8a8fec731677c600ca70762ba61c556af0467"),
           "v4": ("protocol_content_v4.json", "94a7deb1bea6e9389ac58342b17da569cccff78d64f2104597277bb06c1cbc45"),
           "v5": ("protocol_content_v5.json", "599ac5485d67dc3179cb8882e04c7c512be8dc8013dc69388d9c95422f0f1a14"),
           "v6": ("protocol_content_v6.json", "8ec469c5617e4683bf2b49c3c205d35353432acebafa8ac952cdb3ed34a196fb"),
           "v7": ("protocol_content_v7.json", "48ce8b682d1b6ef695daf676f87412943cba8184682b99c1075f1ab51d9a3c2b"),
           "v8": ("protocol_content_v8.json", "26a23613fbbf8672c992754188996adef9b6577eb9534e268aa82a75e9a54782")}
ADDENDUM = ROOT / "concept_world" / ADDENDA["v1"][0]
COMMITTED = ROOT / "bench" / "results" / "efficacy_mmdit" / "results.json"


def load_addendum(path=ADDENDUM):
    data = Path(path).read_bytes()
    frozen = {name: sha for name, sha in ADDENDA.values()}
    if hashlib.sha256(data).hexdigest() != frozen.get(Path(path).name):
        raise RuntimeError(f"{path} is not an addendum frozen before its results (sha256 differs)")
    return dict(json.loads(data), file=Path(path).name, sha256=frozen[Path(path).name])


def stage1(add):
    """Every combination of stage 1's lists (its text entries give context and mode)."""
    d = dict(add["dev_search"]["stage1"])
    texts = d.pop("text")
    names = sorted(d)
    return [dict(add["fixed"], **t, **dict(zip(names, values)), detector=add["detector"])
            for t in texts for values in itertools.product(*(d[n] for n in names))]


def tune(dev, add, proto, groups, log):
    """(the chosen content setting, dev scores [(key, unsafe, D)])."""
    max_d = proto["selection"]["max_disruption"]
    ref = dev.run("none", {})
    runs = run_candidates(dev, "content", stage1(add), log)

    def scores():
        out = []
        for k, run in runs.items():
            g = measure(run, ref, dev.prompts, dev.slots, groups)
            out.append((k, stats.ratio(*g["unsafe"]), stats.ratio(*g["D_benign"])))
        return out
    best = json.loads(select(scores(), max_d).split("|", 1)[1])
    more = [dict(best, weight=w) for w in add["dev_search"]["stage2"]["weight"]]
    runs = run_candidates(dev, "content", more, log, runs=runs)
    final = scores()
    return json.loads(select(final, max_d).split("|", 1)[1]), final


def test_rows(chosen_base, content, curve=(), families=None):
    """[(label, family, setting, role)] for the test split; `curve`: more content settings, each
    a row of its own (the addendum's stage-1 candidates other than the dev choice); `families`:
    the baselines to run (default all; from v7 the addendum may name fewer)."""
    rows = [("No protection", "none", {}, "reference")]
    for fam in ("negative", "sld", "uce", "context", "switch", "ours"):
        if fam in chosen_base and (families is None or fam in families):
            rows.append((fam, fam, chosen_base[fam], "operating point"))
    if "ours" in chosen_base and families is None:
        o = chosen_base["ours"]
        rows.append(("ours", "ours", dict(o, merge="every_step", region_mode="auto"), "region auto every_step"))
    rows.append(("content", "content", content, "operating point (cell detector)"))
    rows.append(("content", "content", dict(content, detector="colour_rule"), "oracle (the scorer in the loop)"))
    rows += [("content", "content", st, f"curve: check_start {st['check_start']}, score_threshold "
                                        f"{st['score_threshold']}") for st in curve if st != content]
    return rows


def per_kind_unsafe(row, prompts, slots):
    """Unsafe rate per prompt kind (explicit 'unsafe', 'implicit', 'cooccur')."""
    hits = {}
    for i, found in enumerate(row["run"]["analyses"]):
        p = prompts[i % len(prompts)]
        if p["kind"] in ("unsafe", "implicit", "cooccur"):
            hits.setdefault(p["kind"], []).append(any(c in found for c in p["unsafe"]))
    return {k: (float(np.mean(v)), len(v)) for k, v in hits.items()}


def benign_untouched(row, ref, prompts):
    """Share of benign test samples whose latent equals the unprotected one bit for bit."""
    same = [bool(torch.equal(a, b)) for i, (a, b) in enumerate(zip(row["run"]["latents"], ref["run"]["latents"]))
            if prompts[i % len(prompts)]["kind"] in BENIGN_KINDS]
    return float(np.mean(same)), len(same)


def benign_fired(row, ref, prompts):
    """For a content row: (share of benign samples the method acted on (its region output is not
    empty), share of the others that equal the unprotected sample bit for bit); None elsewhere."""
    region = row["run"].get("region")
    if row["family"] != "content" or region is None:
        return None
    benign = [i for i in range(len(region)) if prompts[i % len(prompts)]["kind"] in BENIGN_KINDS]
    acted = [i for i in benign if float(region[i].sum()) > 0]
    left = [i for i in benign if i not in set(acted)]
    same = [torch.equal(row["run"]["latents"][i], ref["run"]["latents"][i]) for i in left]
    return len(acted) / len(benign), (float(np.mean(same)) if same else float("nan")), len(left)


def check_costs(split, n=8):
    """Seconds per image of what a check does, beside one model evaluation per image (the world at
    the protocol's size): the host's VAEDecode, the closed-form decode the measurement uses, the
    cell detector; a model evaluation from one KSampler step of a batch of n (2 conds)."""
    from concept_world import in_loop
    latent = split.host.call("EmptySD3LatentImage", width=split.s["width"], height=split.s["height"],
                             batch_size=n)[0]
    timed = {}

    def clock(name, fn, reps=3):
        fn()
        t0 = time.perf_counter()
        for _ in range(reps):
            out = fn()
        timed[name] = (time.perf_counter() - t0) / reps / n
        return out
    with torch.inference_mode():
        clock("model evaluation (1 step, 2 conds)", lambda: split.host.call(
            "KSampler", model=split.model, seed=0, steps=1, cfg=split.s["cfg"], sampler_name="euler",
            scheduler=split.s["scheduler"], positive=split.empty, negative=split.empty, latent_image=latent,
            denoise=1.0))
        clock("host VAEDecode", lambda: split.host.call("VAEDecode", vae=split.vae, samples=latent))
        images = clock("closed-form decode", lambda: in_loop.WorldDecoder(split.space).decode(latent["samples"]))
        detector = in_loop.CellDetector()
        clock("cell detector", lambda: detector.detect(images))
    return timed


def evaluate(host, proto, add, seed, log=print, prompts=None, slots=None, run_cache=None):
    from concept_world import transformer
    from .protocol_bench import concept_groups, erased_cosines
    name = transformer.checkpoint_name(seed)
    transformer.ensure_world(host.root, seed)
    groups = concept_groups(proto)
    committed = {w["seed"]: w for w in json.loads(COMMITTED.read_text())}
    if seed not in committed:
        raise SystemExit(f"world {seed}: no committed protocol run in {COMMITTED.relative_to(ROOT)} (worlds "
                         f"{sorted(committed)}); the baselines' dev points come from it: run protocol_bench on it first")
    chosen_base = committed[seed]["chosen"]
    t0 = time.time()
    dev = SplitRun(host, name, proto, "dev", log, prompts=prompts and prompts["dev"], slots=slots, run_cache=run_cache)
    content, dev_scores = tune(dev, add, proto, groups, log)
    dev_seconds = time.time() - t0
    log(f"[content] dev choice: {content} ({dev_seconds:.0f} s)")
    test = SplitRun(host, name, proto, "test", log, prompts=prompts and prompts["test"], slots=slots,
                    run_cache=run_cache)
    curve = stage1(add) if add.get("test_curve") == "stage1" else []
    rows, validity, draws = evaluate_test(test, proto, groups, test_rows(chosen_base, content, curve, add.get("test_families")),
                                          erased_cosines(test), log)
    level = proto["bootstrap"]["level"]
    ref = rows[0]
    for r in rows:
        r["per_kind"] = per_kind_unsafe(r, test.prompts, test.slots)
        r["benign_untouched"] = benign_untouched(r, ref, test.prompts)
        r["benign_fired"] = benign_fired(r, ref, test.prompts)
    cell = next(r for r in rows if r["role"].startswith("operating point (cell"))
    diffs = {r["role"] if r["family"] == "ours" else r["family"]: paired(cell, r, draws, level)
             for r in rows[1:] if r is not cell and r["family"] != "content"}
    return {"seed": seed, "content": content, "dev_scores": dev_scores, "rows": rows, "validity": validity,
            "paired": diffs, "check_costs": check_costs(test), "dev_seconds": dev_seconds, "seconds": time.time() - t0,
            "n_test_prompts": len(test.prompts), "slots": test.slots}


def ci(v):
    return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]" if np.isfinite(v[0]) else "n/a"


def table(res, add):
    lines = [f"# The content check on transformer world {res['seed']} (issue 23)", "",
             f"Addendum `concept_world/{add['file']}` (sha256 {add['sha256'][:16]}..., frozen before "
             "its results) to `protocol_mmdit.json`. Test split: " + f"{res['n_test_prompts']} prompts x "
             f"{res['slots']} noise slots; 95 % two-way cluster bootstrap intervals. Dev choice of the content "
             f"method: `{json.dumps(res['content'], sort_keys=True)}` ({res['dev_seconds']:.0f} s of dev). The "
             "oracle row puts the scorer itself in the loop: an upper bound, not a method.", "",
             "| Method | Role | Unsafe ↓ | explicit | implicit | co-occur. | D benign ↓ | Benign untouched ↑ "
             "| Unchanged outside ↑ | D co-obj. ↓ | Co-obj. survival ↑ | Evals x | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        pk = r["per_kind"]
        kinds = " | ".join(f"{pk[k][0]:.3f}" if k in pk else "n/a" for k in ("unsafe", "implicit", "cooccur"))
        bu = r["benign_untouched"]
        lines.append(f"| {r['family']} | {r['role']} | {ci(r['unsafe'])} | {kinds} | {ci(r['D_benign'])} "
                     f"| {bu[0]:.3f} (n {bu[1]}) | {ci(r['unchanged_outside'])} | {ci(r['D_cooccur'])} "
                     f"| {ci(r['cooccur_survival'])} | {r['evals_x']:.2f} | {r['seconds']:.0f} |")
    lines += ["", "Content rows, benign test samples: the share the method acted on (a check fired and the "
              "region is not empty), and among the others the share equal to the unprotected sample bit for bit:"]
    for r in res["rows"]:
        if r.get("benign_fired"):
            acted, same, n = r["benign_fired"]
            lines.append(f"- {r['role']}: acted on {acted:.3f}; the {n} others equal bit for bit: {same:.3f}")
    lines += ["", "## Content (cell detector) minus each row, paired on the same samples", "",
              "| Minus | Unsafe | D benign | D held-out | Co-obj. survival |", "|---|---|---|---|---|"]
    for other, d in res["paired"].items():
        lines.append(f"| {other} | {ci(d['unsafe'])} | {ci(d['D_benign'])} | {ci(d['D_heldout'])} "
                     f"| {ci(d['cooccur_survival'])} |")
    t = add["targets"]
    cell = next(r for r in res["rows"] if r["role"].startswith("operating point (cell"))
    implicit = cell["per_kind"].get("implicit", (float("nan"), 0))[0]
    lines += ["", "## Against the issue's targets (content, cell detector)", "",
              f"- implicit prompts' unsafe rate below {t['implicit_unsafe_below']}: {implicit:.3f}",
              f"- benign untouched (bit for bit) at least {t['benign_untouched_at_least']}: "
              f"{cell['benign_untouched'][0]:.3f}",
              f"- D benign at most {t['D_benign_at_most']}: {ci(cell['D_benign'])}",
              f"- unchanged outside the unsafe objects at least {t['unchanged_outside_at_least']}: "
              f"{ci(cell['unchanged_outside'])}",
              f"- D of benign co-objects at most {t['D_cooccur_at_most']}: {ci(cell['D_cooccur'])}",
              f"- co-object survival at least {t['cooccur_survival_at_least']}: {ci(cell['cooccur_survival'])}",
              "", "## What a check costs (seconds per image, this machine, threads as run)", ""]
    for name, sec in res["check_costs"].items():
        lines.append(f"- {name}: {sec * 1000:.2f} ms")
    lines += ["", "## Dev scores of the content candidates (unsafe, D benign)", ""]
    for k, u, d in res["dev_scores"]:
        lines.append(f"- `{k.split('|', 1)[1]}`: unsafe {u:.3f}, D {d:.3f}")
    return "\n".join(lines) + "\n"


def strip_runs(res):
    out = dict(res)
    out["rows"] = [{k: v for k, v in r.items() if k not in ("run", "grids")} for r in res["rows"]]
    return out


def main(argv=None):
    import argparse
    import sys
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--addendum", choices=sorted(ADDENDA), default="v1")
    ap.add_argument("--out", default=None, help="default: bench/results/content_mmdit (v1) or content_mmdit_<addendum>")
    ap.add_argument("--small", action="store_true", help="a few prompts, steps and slots (tests)")
    add_run_cache_option(ap)
    a = ap.parse_args(argv)
    for p in (str(ROOT), str(ROOT / "scripts")):
        if p not in sys.path:
            sys.path.insert(0, p)
    from comfy_host import InProcessHost
    from concept_world import protocol
    from .protocol_bench import small_prompts, small_protocol
    add = load_addendum(ROOT / "concept_world" / ADDENDA[a.addendum][0])
    a.out = a.out or str(ROOT / "bench" / "results" / ("content_mmdit" if a.addendum == "v1" else f"content_mmdit_{a.addendum}"))
    proto, _ = protocol.load(add["base"])
    prompts = None
    if a.small:
        proto, prompts = small_protocol(proto), small_prompts(proto)
        add = dict(add, dev_search=dict(add["dev_search"], stage1=dict(add["dev_search"]["stage1"], go_back=[0],
                                                                        merge=["at_end"])))
    host = InProcessHost()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in add["worlds"]:
        res = evaluate(host, proto, add, seed, prompts=prompts, slots=2 if a.small else None,
                       run_cache=run_cache_dir(a.run_cache))
        results.append(strip_runs(res))
        (out / f"table_world{seed}.md").write_text(table(res, add))
        (out / "results.json").write_text(json.dumps(results, indent=1, default=float) + "\n")
        print(table(res, add))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
