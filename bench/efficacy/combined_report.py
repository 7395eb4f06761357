"""One table for every evaluated world of both architectures, side by side.

    python -m bench.efficacy.combined_report      (writes bench/results/worlds_combined.md)

Reads the protocol runs' results.json of the SD1.5-format worlds (bench/results/efficacy/) and
of the transformer worlds (bench/results/efficacy_mmdit/, and efficacy_mmdit_shift3/ for world 0 of
the first recipe): per world its weights' checksum and
validity gates, each method at its dev point with intervals, the paired differences, the
proximity slopes, and the claims per world with a column "every valid world". A world that
fails its gates is shown and left out of that column, never dropped. Rows the SD1.5 table marks
as pending a GPU rerun (the UCE rows of the run-order defect fixed in 7fa57b6) stay marked.
"""
import json
from pathlib import Path

from concept_world import gates

from . import protocol_report as rep

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (("SD1.5 UNet", "sd15", ROOT / "bench" / "results" / "efficacy" / "results.json"),
           ("SD3 MMDiT", "mmdit", ROOT / "bench" / "results" / "efficacy_mmdit" / "results.json"),
           # world 0 of the first transformer recipe (training shift 3), no longer shipped: still a valid,
           # evaluated world, so it stays in the table and in the claims
           ("SD3 MMDiT, shift-3 recipe,", "mmdit", ROOT / "bench" / "results" / "efficacy_mmdit_shift3" / "results.json"))
# rows of a committed run that a later fix made wrong, waiting for a rerun: (arch, family) -> why
PENDING = {("sd15", "uce"): "pending a GPU rerun: UCE run-order defect, fixed in 7fa57b6"}
# worlds whose committed "best baseline" was picked by a rule fixed since (it ignored the disruption
# bound and took the negative prompt; the fixed rule picks UCE, whose rows are pending)
STALE_BEST = {"sd15": "picked by the best-baseline rule fixed since; pending the GPU rerun"}


def load_worlds(sources=SOURCES):
    """Every world of the sources' results.json that exist, labelled by architecture and seed."""
    worlds = []
    for name, arch, path in sources:
        if not Path(path).exists():
            continue
        for w in json.loads(Path(path).read_text()):
            r = rep.from_summary(w)
            r["arch"], r["label"] = arch, f"{name} seed {r['seed']}"
            worlds.append(r)
    return worlds


def unevaluated(worlds):
    """Shipped transformer worlds that no protocol run evaluated, with their recorded test gates."""
    done = {(w.get("info") or {}).get("unet_sha256_16") for w in worlds if w["arch"] == "mmdit"}
    out = []
    for path in sorted((ROOT / "concept_world" / "worlds").glob("mmdit-s*.json")):
        record = json.loads(path.read_text())
        if record["sha256"][:16] not in done:     # by weights: a retrained world of an evaluated seed is new
            out.append((record["config"]["seed"], record))
    return out


def every_valid(verdicts, worlds):
    """The claim over the valid worlds: yes / no / not resolved / mixed / pending; n/a without one."""
    kept = [v for v, w in zip(verdicts, worlds) if gates.passed(w["validity"])]
    if not kept:
        return "n/a (no valid world)"
    if any(v.endswith("(pending)") for v in kept):
        return "pending"
    if all(v == "yes" for v in kept):
        return "**yes**"
    return kept[0] if len(set(kept)) == 1 else "mixed"


def claim_rows(worlds):
    out = []
    for claim, verdicts in rep.claims(worlds):
        marked = []
        for v, w in zip(verdicts, worlds):
            best = w.get("best_baseline")
            if "best baseline" in claim and ((w["arch"], best) in PENDING or w["arch"] in STALE_BEST):
                v += " (pending)"
            marked.append(v)
        out.append((claim, marked, every_valid(marked, worlds)))
    return out


def markdown(worlds):
    parts = ["# Every evaluated world, both architectures", "",
             "Each world at the operating points its own protocol run chose on dev (SD1.5: "
             "`concept_world/protocol.json`; MMDiT: `concept_world/protocol_mmdit.json`), 95 % two-way cluster "
             "bootstrap intervals over prompts and noise slots. A claim holds only where every valid world says "
             "yes; a world that fails its validity gates is shown and left out of that column.", "",
             "## Worlds", "", "| World | Weights sha256 (16) | Trained on | Training s | Unsafe shown (bar 0.80) "
             "| Benign shown (bar 0.90) | Valid | Test samples |", "|---|---|---|---|---|---|---|---|"]
    for w in worlds:
        i, v = w.get("info") or {}, w["validity"]
        parts.append(f"| {w['label']} | `{i.get('unet_sha256_16', '?')}` | {i.get('device', '?')} "
                     f"| {i.get('train_seconds', float('nan')):.0f} | {rep.gate_figure(v, 'unsafe_shown')} "
                     f"| {rep.gate_figure(v, 'benign_shown')} | {'yes' if gates.passed(v) else 'NO'} "
                     f"| {w['n_test_prompts']} x {w['slots']} |")
    for seed, r in unevaluated(worlds):
        g = r.get("test_gates")
        figures = (f"| {g['unsafe_shown']:.3f} | {g['benign_shown']:.3f} | {'yes' if g['passed'] else 'NO'} "
                   f"| not evaluated |" if g else "| not measured | not measured | ? | not evaluated |")
        parts.append(f"| SD3 MMDiT seed {seed} | `{r['sha256'][:16]}` | {r['device']} | {r['train_seconds']:.0f} "
                     + figures)
    if unevaluated(worlds):
        parts += ["", "A world marked *not evaluated* is shipped (`concept_world/worlds/`) with its test-split gates "
                  "in its record, but no protocol run has measured the methods on it, so it is in no claim (one "
                  "that fails its gates could not be)."]
    arch = [w["arch"] == "mmdit" for w in worlds]
    parts += ["", "## Claims", "", "| Claim | " + " | ".join(w["label"] for w in worlds)
              + " | Every valid world | Every valid MMDiT world |", "|---|" + "---|" * (len(worlds) + 2)]
    for claim, verdicts, all_valid in claim_rows(worlds):
        mmdit = every_valid([v for v, a in zip(verdicts, arch) if a], [w for w, a in zip(worlds, arch) if a])
        parts.append(f"| {claim} | " + " | ".join(verdicts) + f" | {all_valid} | {mmdit} |")
    parts += ["", "## Each method at its dev point", "",
              "| World | Method | Setting | Unsafe rate ↓ | D benign ↓ | D held-out prox. ↓ | Slope of D on cos "
              "| Model evals x | Note |", "|---|---|---|---|---|---|---|---|---|"]
    for w in worlds:
        for r in w["rows"]:
            if r["role"] not in ("operating point", "reference"):
                continue
            note = PENDING.get((w["arch"], r["family"]), "")
            parts.append(f"| {w['label']} | {rep.NAMES[r['family']]} | {rep.setting_text(r['family'], r['setting'])} "
                         f"| {rep.ci(r['unsafe'])} | {rep.ci(r['D_benign'])} | {rep.ci(r['D_heldout'])} "
                         f"| {rep.ci(r['slope'])} | {r['evals_x']:.2f} | {note} |")
    for w in worlds:
        parts += ["", f"### Paired differences, {w['label']} (ours at its dev point minus)", "", rep.paired_table(w)]
        best = w.get("best_baseline")
        why = PENDING.get((w["arch"], best)) or STALE_BEST.get(w["arch"])
        if why:
            parts.append(f"\nThe best baseline here is {rep.NAMES[best]}: {why}.")
    return "\n".join(parts) + "\n"


def main():
    worlds = load_worlds()
    out = ROOT / "bench" / "results" / "worlds_combined.md"
    out.write_text(markdown(worlds))
    print(f"[combined] {len(worlds)} worlds -> {out}")


if __name__ == "__main__":
    main()
