"""Issue 24, item 1: what takes the art-site style shortcut out of the learned detector.
`python -m gate_training.style_experiments` writes bench/results/gate_style_experiments.md.

Every variant trains on the training split at the shipped detector's settings (l2 1e-7, the
benign-I2P weight, its epochs) and is calibrated like it (score 0.5 = 10 % false alarms on the
validation split's style-matched benign I2P prompts). Reported on the validation split and on the
hand-written dev set (used to choose, never to train); the test split is not read.

The style vocabulary: comma-separated segments of the training split's benign I2P prompts (0 %
inappropriate) that occur in at least MIN_COUNT of them ("trending on artstation", "8k",
"by greg rutkowski", ...), so what counts as style is learned from I2P's own benign prompts.
Variants:
  shipped       the recipe shipped before this experiment (COCO captions also trained with a benign
                I2P prompt's tail); since then the shipped detector is style_free at 183 segments
  strip_pos     + every positive also trained with its style segments removed
  style_free    style segments removed from every text before its features, at training and at
                scoring: the features cannot score style words at all
"""
import argparse
import time
from pathlib import Path

import torch

from . import data as D
from .dev_report import load_dev_set
from .report import OUT
from . import train as T
from .train import BENIGN_WEIGHT, BUCKETS, LG, calibrate, evaluate, fit, sample_weights, style_augmented, targets

MIN_COUNT = 8
STYLE_ONLY = ("artstation, 8k, concept art", "trending on artstation, highly detailed, by greg rutkowski",
              "oil painting, masterpiece, octane render")


def style_vocabulary(train_set, min_count=MIN_COUNT):
    return T.style_vocabulary(train_set, min_count)


without_style = LG.without_style


def variant_texts(name, prompts, vocab):
    return [without_style(p.text, vocab) if name == "style_free" else p.text for p in prompts]


def train_variant(name, train_set, vocab, l2=1e-7):
    prompts = list(train_set) + style_augmented(train_set)
    if name == "strip_pos":
        prompts += [D.Prompt(without_style(p.text, vocab), p.source, p.row, p.inappropriate, p.categories, p.hard,
                             p.split) for p in train_set
                    if D.label(p) == 1 and without_style(p.text, vocab) not in (p.text, "")]
    x = LG.design_matrix(variant_texts(name, prompts, vocab), BUCKETS)
    y, m = targets(prompts, 50.0, LG.HEADS)
    return fit(x, y, m, sample_weights(prompts, BENIGN_WEIGHT), l2)


def scores(W, b, cuts, texts):
    logits = torch.sparse.mm(LG.design_matrix(texts, BUCKETS), W) + b
    return torch.sigmoid(logits - cuts)     # 0.5 at each head's cut, as the shipped detector scores


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(OUT / "gate_style_experiments.md"))
    ap.add_argument("--min-count", type=int, default=MIN_COUNT, help="a style segment's benign I2P prompts")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    prompts = D.load_prompts()
    train_set = [p for p in prompts if p.split == "train" and D.label(p) is not None]
    val = [p for p in prompts if p.split == "val"]
    dev = load_dev_set()
    vocab = style_vocabulary(train_set, a.min_count)
    lines = ["# Taking the style shortcut out of the learned detector (issue 24, item 1)", "",
             f"Style vocabulary: {len(vocab)} comma-separated segments found in at least {a.min_count} of the "
             "training split's benign I2P prompts, e.g. " + ", ".join(f"`{s}`" for s in sorted(vocab)[:12]) + ". "
             "Decision at 0.5 (each head's cut: 10 % false alarms on validation benign I2P). Dev set: recall on "
             "its unsafe prompts, false alarms on its benign ones and on its benign art-style ones.", "",
             "| variant | val AUC vs COCO | val AUC vs benign I2P | val recall at 0.5 | val COCO FA | val benign-I2P FA "
             "| dev recall | dev FA | dev art-style FA | style-only prompts (scores) | s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in ("shipped", "strip_pos", "style_free"):
        t0 = time.time()
        W, b = train_variant(name, train_set, vocab)
        val_texts = variant_texts(name, val, vocab)
        cuts = calibrate(torch.sparse.mm(LG.design_matrix(val_texts, BUCKETS), W) + b, val, LG.HEADS)
        m = evaluate(scores(W, b, cuts, val_texts), val, LG.HEADS, 50.0, cuts)["any"]
        dev_texts = [without_style(r.text, vocab) if name == "style_free" else r.text for r in dev]
        ds = scores(W, b, cuts, dev_texts)[:, 0].tolist()
        flag = [s >= 0.5 for s in ds]
        unsafe = [f for f, r in zip(flag, dev) if r.label == "unsafe"]
        benign = [f for f, r in zip(flag, dev) if r.label == "benign"]
        art = [f for f, r in zip(flag, dev) if r.label == "benign" and r.kind == "art_style"]
        style_texts = [without_style(t, vocab) if name == "style_free" else t for t in STYLE_ONLY]
        st = ", ".join(f"{v:.2f}" for v in scores(W, b, cuts, style_texts)[:, 0].tolist())
        lines.append(f"| {name} | {m['auc_coco']:.3f} | {m['auc_benign_i2p']:.3f} | {m['shipped_recall']:.1%} "
                     f"| {m['shipped_coco_fa']:.1%} | {m['shipped_benign_i2p_fa']:.1%} | {sum(unsafe) / len(unsafe):.1%} "
                     f"| {sum(benign) / len(benign):.1%} | {sum(art) / len(art):.1%} | {st} | {time.time() - t0:.0f} |")
        print(lines[-1], flush=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print(f"[style] wrote {a.out}")


if __name__ == "__main__":
    main()
