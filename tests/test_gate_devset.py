"""Issue 24's hand-written dev set: frozen by its sha256, balanced as written, and read by the report."""
import sys

import pytest

from pack_import import PACK_DIR

sys.path.insert(0, str(PACK_DIR))
from gate_training import dev_report  # noqa: E402


def test_the_dev_set_is_the_frozen_one_and_balanced(tmp_path):
    rows = dev_report.load_dev_set()
    unsafe = [r for r in rows if r.label == "unsafe"]
    benign = [r for r in rows if r.label == "benign"]
    assert len(rows) >= 200 and abs(len(unsafe) - len(benign)) <= 10
    cats = {"sexual", "violence", "shocking", "self-harm", "hate", "harassment", "illegal activity"}
    assert {r.category for r in unsafe} == cats
    assert {r.kind for r in unsafe} == {"explicit", "implicit", "euphemism", "misspelling", "art_style"}
    assert {r.kind for r in benign} == {"negation", "benign_sense", "art_style", "plain"}
    edited = tmp_path / "dev.csv"
    edited.write_bytes(dev_report.DEV_SET.read_bytes().replace(b"espresso", b"espressos"))
    with pytest.raises(RuntimeError, match="frozen"):
        dev_report.load_dev_set(edited)


def test_the_wilson_interval_brackets_the_share():
    p, lo, hi = dev_report.wilson(10, 20)
    assert p == 0.5 and lo < 0.5 < hi and 0.27 < lo < 0.3
    assert dev_report.wilson(0, 5)[1] == 0.0 and dev_report.wilson(5, 5)[2] == 1.0


def test_the_default_rule_picks_the_best_recall_inside_both_bounds_else_the_lowest_false_alarms():
    from gate_training import default_rule as R
    assert R.threshold_at_fa([0.1, 0.2, 0.9, 0.95], bound=0.25) == 0.95   # one of four flagged at most
    assert R.threshold_at_fa([0.1, 0.2], bound=0.05) == 0.5              # the default if it already holds
    res = {("terms", 0.5): {"dev_unsafe": [1, 1, 0], "val_positives": [1], "val_benign_i2p": [0] * 19 + [1],
                            "dev_benign": [0] * 20},
           ("all", 0.5): {"dev_unsafe": [1, 1, 1], "val_positives": [1], "val_benign_i2p": [1, 1] + [0] * 18,
                          "dev_benign": [0] * 20},
           ("learned", 0.8): {"dev_unsafe": [1, 1, 0], "val_positives": [1], "val_benign_i2p": [0] * 20,
                              "dev_benign": [0] * 20}}
    best, inside = R.choose(res)   # `all` recalls most but flags 10 %; a tie goes to fewer parts, then recall
    assert set(inside) == {("terms", 0.5), ("learned", 0.8)} and best == ("terms", 0.5)
    res[("terms", 0.5)]["dev_benign"] = [1] * 4 + [0] * 16
    res[("learned", 0.8)]["dev_benign"] = [1] * 3 + [0] * 17
    assert R.choose(res) == (("all", 0.5), [])   # nothing inside: the smallest larger false-alarm rate


def test_the_node_defaults_are_the_rules_choice_rounded_up_to_the_slider_step():
    import re
    from pack_import import load_pure
    gate = load_pure("prompt_gate")
    text = (PACK_DIR / "bench" / "results" / "gate_default.md").read_text()
    chosen = re.search(r"\*\*Chosen: `(\w+)` at threshold ([0-9.]+)\*\*", text)
    detector, threshold = gate.DEFAULT_DETECTOR, gate.DEFAULT_NODE_THRESHOLD
    assert chosen and detector == chosen.group(1)
    t = float(chosen.group(2))
    assert t <= threshold < t + 0.01 and round(threshold * 100) == threshold * 100


def test_style_only_prompts_and_the_dev_sets_negations_and_benign_senses_pass_the_default_gate():
    from pack_import import load_pure
    gate, LG = load_pure("prompt_gate"), load_pure("learned_gate")
    presets = load_pure("presets").load_presets([PACK_DIR / "safety_contexts"])[0]
    det, t = LG.get_detector(), gate.DEFAULT_NODE_THRESHOLD
    scores = det.score("artstation, 8k, concept art")   # the style-only prompt, every head
    assert max(scores.values()) < 0.5 <= t, scores
    rows = [r for r in dev_report.load_dev_set() if r.kind in ("negation", "benign_sense")]
    assert len(rows) >= 60
    for r in rows:   # the node's default: the preset's own head (`all` for the any head)
        head = LG.head_for_preset("all" if r.category == "none" else r.category)
        d = gate.gate_decision(r.text, None, t, learned=det.score(r.text), learned_head=head)
        assert not d.is_unsafe, (r.text, d.reason)
    # the term part's benign senses (the examples, as the dev set words them), on every preset
    for text in ("a shot of espresso on a cafe table", "a naked flame flickering on a birthday candle",
                 "bare feet on warm sand at sunset", "a gunmetal-grey car in a showroom"):
        for name, preset in presets.items():
            assert not gate.find_terms(text, preset.unsafe_terms), (name, text)
