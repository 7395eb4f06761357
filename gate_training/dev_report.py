"""The prompt gate's detectors on the hand-written dev set (gate_training/dev_set/, issue 24):
`python -m gate_training.dev_report` writes bench/results/gate_devset.md.

The set is frozen (its sha256 is checked here) and is used to choose and to report, never to train.
Per detector (terms, learned, all: as report.py computes them, decision at 0.5): recall on the
unsafe prompts (the `any` head / `all` preset, and each category's own head / preset on that
category's prompts) and false alarms on the benign prompts, per kind, with 95 % Wilson intervals.
"""
import argparse
import csv
import hashlib
from pathlib import Path

from .metrics import wilson
from .report import DETECTORS, LG, OUT, detector_scores, preset_terms

DEV_SET = Path(__file__).resolve().parent / "dev_set" / "handwritten_dev.csv"
DEV_SET_SHA256 = "32ec11d3bbdf275c09dc391568e44a91005e3b9d533214f61d9de33ce552711c"


class Row:
    def __init__(self, text, label, category, kind):
        self.text, self.label, self.category, self.kind = text, label, category, kind


def load_dev_set(path=DEV_SET):
    data = Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() != DEV_SET_SHA256:
        raise RuntimeError(f"{path} is not the frozen hand-written dev set (sha256 differs)")
    return [Row(r["prompt"], r["label"], r["category"], r["kind"])
            for r in csv.DictReader(data.decode("utf-8").splitlines())]


def share(flags):
    k, n = sum(flags), len(flags)
    p, lo, hi = wilson(k, n)
    return "-" if n == 0 else f"{100 * p:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}] ({k}/{n})"


def markdown(rows, scores):
    def flags(det, head, idx):
        return [scores[det][head][i] >= 0.5 for i in idx]
    unsafe = [i for i, r in enumerate(rows) if r.label == "unsafe"]
    benign = [i for i, r in enumerate(rows) if r.label == "benign"]
    lines = ["# Prompt gate detectors on the hand-written dev set", "",
             f"`gate_training/dev_set/handwritten_dev.csv` (sha256 {DEV_SET_SHA256[:16]}..., frozen before any "
             f"training): {len(unsafe)} unsafe and {len(benign)} benign prompts written for issue 24. Decision at "
             "score 0.5, as the node decides by default; 95 % Wilson intervals. Nothing was tuned on this set.", "",
             "## Recall on unsafe prompts (`any` head / `all` preset)", "",
             "| kind | " + " | ".join(DETECTORS) + " |", "|---|" + "---|" * len(DETECTORS)]
    kinds = sorted({rows[i].kind for i in unsafe})
    for k in ["all"] + kinds:
        idx = [i for i in unsafe if k == "all" or rows[i].kind == k]
        lines.append(f"| {k} | " + " | ".join(share(flags(d, "any", idx)) for d in DETECTORS) + " |")
    lines += ["", "## Recall per category (the category's own head / preset, on that category's prompts)", "",
              "| category | " + " | ".join(DETECTORS) + " |", "|---|" + "---|" * len(DETECTORS)]
    for c in LG.HEADS[1:]:
        idx = [i for i in unsafe if rows[i].category == c]
        lines.append(f"| {c} | " + " | ".join(share(flags(d, c, idx)) for d in DETECTORS) + " |")
    lines += ["", "## False alarms on benign prompts (`any` head / `all` preset)", "",
              "| kind | " + " | ".join(DETECTORS) + " |", "|---|" + "---|" * len(DETECTORS)]
    for k in ["all"] + sorted({rows[i].kind for i in benign}):
        idx = [i for i in benign if k == "all" or rows[i].kind == k]
        lines.append(f"| {k} | " + " | ".join(share(flags(d, "any", idx)) for d in DETECTORS) + " |")
    lines += ["", "## Benign prompts flagged by `all`", ""]
    for i in benign:
        if scores["all"]["any"][i] >= 0.5:
            lines.append(f"- ({rows[i].kind}, {rows[i].category}) {rows[i].text} — terms "
                         f"{int(scores['terms']['any'][i])}, learned {scores['learned']['any'][i]:.2f}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default=str(LG.DEFAULT_WEIGHTS))
    ap.add_argument("--out", default=str(OUT / "gate_devset.md"))
    a = ap.parse_args(argv)
    rows = load_dev_set()
    scores = detector_scores(rows, LG.load_detector(a.weights), preset_terms())
    text = markdown(rows, scores)
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
