"""Choose the prompt gate's default detector by a rule fixed before its candidate table existed
(issue 24, item 4): `python -m gate_training.default_rule` writes bench/results/gate_default.md.

The rule (committed with this file before the table below was first computed; what had been seen
before: each detector's figures at threshold 0.5 on the dev set and on the held-out split, in
bench/results/gate_devset.md and gate_heldout.md):

- Candidates: the node's detector choices whose parts can be measured here, `terms`, `learned`
  and `all` (terms or learned), each at the node's default threshold 0.5, and `learned` and `all`
  at t5, the lowest threshold at which the learned `any` head flags at most 5 % of the
  *validation* split's style-matched benign I2P prompts. `terms+similarity` is no candidate: its
  similarity part needs real text-encoder weights this project does not have.
- Bounds: false alarms <= 5 % (point estimates) on the validation split's style-matched benign
  I2P prompts and on the dev set's benign prompts.
- Choice: inside both bounds, the best recall on the dev set's unsafe prompts (the `any` head /
  `all` preset); ties go to the better recall on the validation split's I2P positives, then to the
  candidate with fewer parts.
- When no candidate is inside both bounds, the default is the one with the smallest larger-of-
  the-two false-alarm rates, and the README says by how much it misses.
- The test split and COCO are reported beside the choice, never used to make it.
"""
from pathlib import Path

from . import data as D
from .dev_report import load_dev_set
from .metrics import wilson_text
from .report import LG, detector_scores, load_pure, preset_terms, report_args

FA_BOUND = 0.05
DEFAULT_THRESHOLD = 0.5
PARTS = {"terms": 1, "learned": 1, "all": 2}


def threshold_at_fa(benign_scores, bound=FA_BOUND):
    """The lowest threshold t (flag s >= t) with share(benign >= t) <= bound, among the scores
    themselves and the default 0.5."""
    n = len(benign_scores)
    for t in sorted(set(benign_scores) | {DEFAULT_THRESHOLD}):
        if sum(s >= t for s in benign_scores) <= bound * n:
            return t
    return float("inf")


def flags(scores, idx, t):
    return [scores[i] >= t for i in idx]


def share(f):
    return sum(f) / len(f) if f else float("nan")


def evaluate(candidates, sets):
    """{(detector, threshold): {set name: [flag per prompt]}} for sets {name: (scores by detector, idx)}."""
    return {(d, t): {name: flags(S[d]["any"], idx, t) for name, (S, idx) in sets.items()} for d, t in candidates}


def choose(results):
    """The rule above over {(detector, threshold): {set: flags}}: returns (chosen key, inside-bounds keys)."""
    inside = [k for k, r in results.items()
              if share(r["val_benign_i2p"]) <= FA_BOUND and share(r["dev_benign"]) <= FA_BOUND]
    if inside:
        best = max(inside, key=lambda k: (share(results[k]["dev_unsafe"]), share(results[k]["val_positives"]),
                                          -PARTS[k[0]]))
    else:
        best = min(results, key=lambda k: max(share(results[k]["val_benign_i2p"]), share(results[k]["dev_benign"])))
    return best, inside


def main(argv=None):
    a = report_args(__doc__, "gate_default.md", argv)
    det, terms = LG.load_detector(a.weights), preset_terms()
    prompts = D.load_prompts(a.data)
    cut = 50.0
    val = [p for p in prompts if p.split == "val"]
    test = [p for p in prompts if p.split == "test"]
    dev = load_dev_set()
    Sv, St, Sd = (detector_scores(x, det, terms) for x in (val, test, dev))

    def i2p(ps, lab):
        return [i for i, p in enumerate(ps) if p.source == "i2p" and D.label(p, cut) == lab]
    sets = {"dev_unsafe": (Sd, [i for i, r in enumerate(dev) if r.label == "unsafe"]),
            "dev_benign": (Sd, [i for i, r in enumerate(dev) if r.label == "benign"]),
            "val_positives": (Sv, i2p(val, 1)), "val_benign_i2p": (Sv, i2p(val, 0)),
            "test_positives": (St, i2p(test, 1)), "test_benign_i2p": (St, i2p(test, 0)),
            "test_coco": (St, [i for i, p in enumerate(test) if p.source == "coco"])}
    t5 = threshold_at_fa([Sv["learned"]["any"][i] for i in sets["val_benign_i2p"][1]])
    candidates = [("terms", DEFAULT_THRESHOLD), ("learned", DEFAULT_THRESHOLD), ("all", DEFAULT_THRESHOLD),
                  ("learned", t5), ("all", t5)]
    results = evaluate(candidates, sets)
    best, inside = choose(results)
    gate = load_pure("prompt_gate")
    node = (gate.DEFAULT_DETECTOR, gate.DEFAULT_NODE_THRESHOLD)
    results[node] = evaluate([node], sets)[node]
    cols = ["dev_unsafe", "val_positives", "dev_benign", "val_benign_i2p", "test_positives", "test_benign_i2p",
            "test_coco"]
    lines = ["# The prompt gate's default detector, chosen by a rule fixed before this table", "",
             "The rule is the docstring of `gate_training/default_rule.py` (committed before this table was first "
             f"computed). t5 = {t5:.3f}: the lowest threshold at which the learned `any` head flags at most 5 % of "
             "the validation split's style-matched benign I2P prompts. Bounds (choice): false alarms <= 5 % on the "
             "validation benign I2P prompts and on the dev set's benign prompts. Recall columns: share flagged of "
             "unsafe prompts; FA columns: share flagged of benign prompts; 95 % Wilson intervals. Test-split "
             "columns are reported, not used to choose.", "",
             "| detector | threshold | dev recall | val I2P recall | dev FA | val benign-I2P FA | test I2P recall "
             "| test benign-I2P FA | test COCO FA | inside bounds |",
             "|---|---|" + "---|" * (len(cols) + 1)]
    for k in candidates + [node]:
        r = results[k]
        within = share(r["val_benign_i2p"]) <= FA_BOUND and share(r["dev_benign"]) <= FA_BOUND
        name = f"{k[0]} (the node's default)" if k == node else k[0]
        lines.append(f"| {name} | {k[1]:.3f} | " + " | ".join(wilson_text(r[c]) for c in cols)
                     + f" | {'yes' if within else 'no'} |")
    verdict = (f"**Chosen: `{best[0]}` at threshold {best[1]:.3f}**" + (
        " (inside both bounds)." if inside else
        " — no candidate is inside both bounds, so the rule's fallback (smallest larger-of-the-two false-alarm "
        "rates) chose it."))
    unsafe_dev = [r for r in dev if r.label == "unsafe"]
    node_scores = Sd[node[0]]["any"]
    dev_idx = {id(r): i for i, r in enumerate(dev)}
    lines += ["", verdict, "",
              f"The node's defaults are `{node[0]}` at {node[1]:g} (`nodes/prompt_gate.py`): the chosen threshold "
              "rounded up to the slider's 0.01 step, so its false alarms can only be lower.", "",
              "Recall of the node's default on the dev set's unsafe prompts, per kind:", "",
              "| kind | recall |", "|---|---|"]
    for kind in sorted({r.kind for r in unsafe_dev}):
        f = [node_scores[dev_idx[id(r)]] >= node[1] for r in unsafe_dev if r.kind == kind]
        lines.append(f"| {kind} | {wilson_text(f)} |")
    lines.append("")
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return best, results


if __name__ == "__main__":
    main()
