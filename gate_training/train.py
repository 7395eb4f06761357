"""Train the learned prompt detector: `make train-gate` (python -m gate_training.train).

Multi-head logistic regression (nodes/learned_gate.py) fitted by full-batch Adam, one torch
thread, fixed epochs: the same data gives the same weights, bit for bit. Heads:
    any        positives vs negatives (gate_training/data.py)
    <category> positives of that I2P category vs the same negatives (positives of other
               categories are left out of that head: I2P categories are search terms, not labels)
COCO captions are plain photo captions and I2P prompts are art-site prompts, so a detector can
separate them by style alone. Against that: the style-matched benign I2P prompts weigh more
(benign_weight) and, optionally (style_augment), each training COCO caption is also trained on
with the tail (after the first comma) of a benign training I2P prompt.
Tuned on the validation split only: the L2 strength and style_augment (a small grid; the
objective is recall at 1.8% COCO false alarms plus recall at 10% benign-I2P false alarms) and
each head's operating point (its cut: 10% false alarms on the validation split's style-matched
benign I2P prompts; the score is 0.5 there). The test split is only measured, after everything
is fixed, and written beside the weights with the data hash.
Style (issue 24): comma-separated segments found in at least STYLE_MIN_COUNT of the training split's
benign I2P prompts (after their first segment, the subject) form the style vocabulary; every text
loses its style segments before its features, in training and in scoring (learned_gate.without_style),
so style alone cannot score. Chosen in gate_training/style_experiments.py (the `style_free` variant).
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from pack_pure import load_pure  # noqa: E402

from . import data as D  # noqa: E402
from .metrics import cut_at_fa, recall_at_fa, roc_auc  # noqa: E402

LG = load_pure("learned_gate")
BUCKETS = 1 << 17
EPOCHS = 150
LR = 0.05
COCO_FA = 0.018       # the term part's COCO false-alarm rate (bench/results/gate_i2p.md)
GRID = {"l2": (1e-7, 1e-6), "style_augment": (False, True)}
BENIGN_WEIGHT = 4.0
BENIGN_FA = 0.10      # the operating point: false alarms on style-matched benign I2P (validation)
SAMPLE = ROOT / "detector" / "heldout_sample.csv"
STYLE_MIN_COUNT = 3


def segments(text):
    return [s.strip().lower() for s in text.split(",") if s.strip()]


def style_vocabulary(train_set, min_count=STYLE_MIN_COUNT):
    """Style segments: in at least min_count benign I2P training prompts, the subject excluded."""
    import collections
    counts = collections.Counter(s for p in train_set if p.source == "i2p" and D.label(p) == 0
                                 for s in set(segments(p.text)[1:]))
    return frozenset(s for s, n in counts.items() if n >= min_count)


def targets(prompts, cut=50.0, heads=LG.HEADS):
    """(labels, mask) of shape (n, heads): mask 0 where a prompt does not train a head."""
    y = torch.zeros(len(prompts), len(heads))
    m = torch.zeros(len(prompts), len(heads))
    for i, p in enumerate(prompts):
        lab = D.label(p, cut)
        if lab == 0:
            m[i] = 1.0
        elif lab == 1:
            for j, h in enumerate(heads):
                if h == "any" or h in p.categories:
                    y[i, j], m[i, j] = 1.0, 1.0
    return y, m


def fit(x, y, mask, weight, l2, epochs=EPOCHS, lr=LR):
    """Full-batch Adam on the masked, weighted logistic loss (gradients written out, sparse CSR
    products); returns (W, b)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)     # one thread: the same summation order on every run
    try:
        xc, xt = x.to_sparse_csr(), x.t().coalesce().to_sparse_csr()
        W = torch.zeros(x.shape[1], y.shape[1])
        b = torch.zeros(y.shape[1])
        wm = mask * weight[:, None]
        # balance each head: positives and negatives carry equal total weight
        pos_w = (wm * y).sum(0).clamp(min=1e-9)
        neg_w = (wm * (1 - y)).sum(0).clamp(min=1e-9)
        wm = wm * torch.where(y > 0, 0.5 / pos_w, 0.5 / neg_w) / y.shape[1]
        opt = torch.optim.Adam([W, b], lr=lr)
        for _ in range(epochs):
            g = (torch.sigmoid(xc @ W + b) - y) * wm          # d loss / d logits
            W.grad = xt @ g + 2 * l2 * W
            b.grad = g.sum(0)
            opt.step()
        return W, b
    finally:
        torch.set_num_threads(threads)


def style_augmented(train_set):
    """COCO captions dressed in I2P style: each caption + the tail (after the first comma) of a
    style-matched benign I2P prompt of the same set, picked by crc32 of the caption."""
    import zlib
    tails = [p.text.split(",", 1)[1].strip() for p in train_set
             if p.source == "i2p" and D.label(p) == 0 and "," in p.text and p.text.split(",", 1)[1].strip()]
    return [D.Prompt(f"{p.text.strip().rstrip('.')}, {tails[zlib.crc32(p.text.encode('utf-8')) % len(tails)]}",
                     "coco+style", p.row, 0.0, (), False, p.split)
            for p in train_set if p.source == "coco" and tails]


def sample_weights(prompts, benign_weight):
    return torch.tensor([benign_weight if p.source == "i2p" and D.label(p) == 0 else 1.0 for p in prompts])


def evaluate(scores, prompts, heads, cut=50.0, cuts=None):
    """Metrics of one split: per head AUC and recall at 1%/2%/1.8% COCO false alarms (cut on this
    split's COCO), and at the shipped cut (0.5 on scores) when `cuts` is given."""
    coco = [i for i, p in enumerate(prompts) if p.source == "coco"]
    benign = [i for i, p in enumerate(prompts) if p.source == "i2p" and D.label(p, cut) == 0]
    out = {}
    for j, h in enumerate(heads):
        pos = [i for i, p in enumerate(prompts) if D.label(p, cut) == 1 and (h == "any" or h in p.categories)]
        s = scores[:, j].tolist()
        ps, cs, bs = [s[i] for i in pos], [s[i] for i in coco], [s[i] for i in benign]
        r = {"positives": len(pos), "auc_coco": roc_auc(ps, cs), "auc_benign_i2p": roc_auc(ps, bs),
             **{f"recall_at_{fa:g}_coco_fa": recall_at_fa(ps, cs, fa) for fa in (0.01, 0.02, COCO_FA)},
             "recall_at_0.1_benign_i2p_fa": recall_at_fa(ps, bs, 0.1)}
        if cuts is not None:
            r.update({"shipped_recall": sum(v >= 0.5 for v in ps) / max(len(ps), 1),
                      "shipped_coco_fa": sum(v >= 0.5 for v in cs) / max(len(cs), 1),
                      "shipped_benign_i2p_fa": sum(v >= 0.5 for v in bs) / max(len(bs), 1)})
        out[h] = r
    return out


def train(prompts, cut=50.0, l2=1e-7, style_augment=False, benign_weight=BENIGN_WEIGHT, buckets=BUCKETS,
          epochs=EPOCHS, heads=LG.HEADS, style=frozenset()):
    """(W, b) trained on the given prompts (each without its style segments)."""
    if style_augment:
        prompts = list(prompts) + style_augmented(prompts)
    x = LG.design_matrix([LG.without_style(p.text, style) for p in prompts], buckets)
    y, m = targets(prompts, cut, heads)
    return fit(x, y, m, sample_weights(prompts, benign_weight), l2, epochs)


def calibrate(logits, prompts, heads, fa=BENIGN_FA):
    """Per head: the cut at `fa` false alarms on these (validation) prompts' style-matched benign I2P."""
    benign = [i for i, p in enumerate(prompts) if p.source == "i2p" and D.label(p) == 0]
    return torch.tensor([cut_at_fa([float(logits[i, j]) for i in benign], fa) for j in range(len(heads))])


def objective(m):
    return m["any"][f"recall_at_{COCO_FA:g}_coco_fa"] + m["any"]["recall_at_0.1_benign_i2p_fa"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(D.DATA))
    ap.add_argument("--out", default=str(LG.DEFAULT_WEIGHTS))
    ap.add_argument("--cut", type=float, default=50.0, help="label cut-off: inappropriate >= this %% is positive")
    a = ap.parse_args(argv)
    t0 = time.time()
    prompts = D.load_prompts(a.data)
    split = {s: [p for p in prompts if p.split == s] for s in D.SPLITS}
    train_set = [p for p in split["train"] if D.label(p, a.cut) is not None]
    style = style_vocabulary(train_set)
    xv = LG.design_matrix([LG.without_style(p.text, style) for p in split["val"]], BUCKETS)
    grid = []
    for l2 in GRID["l2"]:
        for aug in GRID["style_augment"]:
            W, b = train(train_set, a.cut, l2, aug, style=style)
            m = evaluate(torch.sparse.mm(xv, W) + b, split["val"], LG.HEADS, a.cut)
            grid.append(({"l2": l2, "style_augment": aug}, objective(m), m["any"]))
            print(f"[train-gate] l2 {l2:g} style augment {aug}: val objective {grid[-1][1]:.4f} "
                  f"(recall at 1.8% COCO FA {m['any']['recall_at_0.018_coco_fa']:.3f}, "
                  f"at 10% benign-I2P FA {m['any']['recall_at_0.1_benign_i2p_fa']:.3f})", flush=True)
    best = max(grid, key=lambda g: g[1])[0]
    W, b = train(train_set, a.cut, best["l2"], best["style_augment"], style=style)
    W = W.half().float()     # score with the weights as shipped (float16)
    cuts = calibrate(torch.sparse.mm(xv, W) + b, split["val"], LG.HEADS)
    det = LG.LearnedDetector(W, b, cuts, style=style)
    seconds = time.time() - t0
    metrics = {s: evaluate(det.scores([p.text for p in split[s]]), split[s], LG.HEADS, a.cut, cuts)
               for s in ("val", "test")}
    sample = fixed_sample(split["test"], a.cut)
    write_sample(sample, Path(a.out).with_name(SAMPLE.name))
    sample_scores = det.scores([p.text for p in sample])
    info = {"data_sha256": D.data_hash(a.data), "label_cut": a.cut, "buckets": BUCKETS, "epochs": EPOCHS,
            "lr": LR, "benign_weight": BENIGN_WEIGHT, "operating_point": f"{BENIGN_FA:g} benign-I2P FA (val)",
            "style_min_count": STYLE_MIN_COUNT, "style_segments": len(style), "chosen": best, "grid": [dict(g[0], val_objective=g[1]) for g in grid],
            "train_seconds": round(seconds, 1), "counts": counts(split, a.cut)}
    save_detector_with_report(a.out, det, info, metrics, evaluate(sample_scores, sample, LG.HEADS, a.cut, cuts),
                              sample_scores)
    print(f"[train-gate] wrote {a.out} ({Path(a.out).stat().st_size / 1e6:.2f} MB) in {seconds:.0f} s; "
          f"test: AUC vs COCO {metrics['test']['any']['auc_coco']:.3f}, recall at 1.8% COCO FA "
          f"{metrics['test']['any']['recall_at_0.018_coco_fa']:.3f}")
    return det, metrics


def counts(split, cut):
    return {s: {"positives": sum(D.label(p, cut) == 1 for p in ps),
                "coco": sum(p.source == "coco" for p in ps),
                "benign_i2p": sum(p.source == "i2p" and D.label(p, cut) == 0 for p in ps),
                "excluded": sum(D.label(p, cut) is None for p in ps)} for s, ps in split.items()}


def fixed_sample(test, cut, n=(40, 40, 20)):
    """A small fixed held-out sample: the first positives, COCO captions and benign I2P prompts of
    the test split in file order (committed, so the test suite needs no network)."""
    groups = ([p for p in test if D.label(p, cut) == 1], [p for p in test if p.source == "coco"],
              [p for p in test if p.source == "i2p" and D.label(p, cut) == 0])
    return [p for g, k in zip(groups, n) for p in g[:k]]


def write_sample(sample, path=SAMPLE):
    import csv
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["prompt", "source", "inappropriate_percentage", "categories"])
        for p in sample:
            w.writerow([p.text, p.source, p.inappropriate, ", ".join(p.categories)])


def save_detector_with_report(out, det, info, metrics, sample_metrics, sample_scores):
    LG.save_detector(out, det.weight, det.bias, det.cut, LG.HEADS, det.char_ngrams,
                     {"data_sha256": info["data_sha256"]}, det.style)
    report = dict(info, weights_sha256=file_hash(out), metrics=metrics, sample={
        "file": SAMPLE.name, "metrics": sample_metrics,
        "any_scores": [round(float(s), 6) for s in sample_scores[:, 0]]})
    Path(out).with_suffix(".json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")


def file_hash(path):
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


if __name__ == "__main__":
    main()
