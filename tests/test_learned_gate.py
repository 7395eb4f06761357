"""The learned prompt detector without the host: features, deterministic training, the shipped
weights (loaded, and reproducing the held-out numbers written beside them on the committed
sample), bad weight files, and gate decisions on crafted prompts."""
import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from pack_import import PACK_DIR, load_pure

sys.path.insert(0, str(PACK_DIR))
from gate_training import data as D  # noqa: E402
from gate_training import train as T  # noqa: E402

LG = load_pure("learned_gate")
gate = load_pure("prompt_gate")
presets = load_pure("presets")
WEIGHTS = LG.DEFAULT_WEIGHTS
REPORT = json.loads(WEIGHTS.with_suffix(".json").read_text())
ALL_TERMS = presets.load_presets([PACK_DIR / "safety_contexts"])[0]["all"].unsafe_terms


def sample_prompts():
    with open(T.SAMPLE, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [D.Prompt(r["prompt"], r["source"], str(i), float(r["inappropriate_percentage"]),
                     tuple(c.strip() for c in r["categories"].split(",") if c.strip()), False, "test")
            for i, r in enumerate(rows)]


def test_words_mark_negation_and_features_cover_ngrams():
    # negated words and benign compounds are left out: the term matcher ignores them too
    assert LG.words("No blood, GORE without nudity") == ["gore"]
    assert LG.words("a killer whale, fully clothed") == ["a"]
    f = LG.feature_names("a nude")
    assert {"w:a", "w:nude", "b:a nude", "c:<nu", "c:nude>", "c:<nude"} <= f and "c:<nude>" not in f
    assert not any("bl" in x for x in LG.feature_names("no blood"))


def test_feature_hashing_is_stable_across_processes():
    # crc32, not Python's salted hash(): another interpreter with another hash seed gives the same slots
    here = LG.feature_slots("a bloody knife fight, artstation", 1 << 17)
    code = ("import sys; sys.path.insert(0, 'bench'); from pack_pure import load_pure; "
            "print(load_pure('learned_gate').feature_slots('a bloody knife fight, artstation', 1 << 17))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PACK_DIR, capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONHASHSEED="123"))
    assert out.stdout.strip() == str(here)
    x = LG.design_matrix(["a bloody knife fight, artstation", ""], 1 << 17).to_dense()
    assert torch.allclose(x[0].norm(), torch.tensor(1.0)) and x[1].abs().sum() == 0
    assert x[0].nonzero().flatten().tolist() == here


def test_training_is_deterministic(tmp_path):
    prompts = sample_prompts()
    runs = [T.train(prompts, style_augment=True, buckets=1 << 12, epochs=20) for _ in range(2)]
    (w1, b1), (w2, b2) = runs
    assert torch.equal(w1, w2) and torch.equal(b1, b2)
    assert w1.abs().sum() > 0   # it did learn something
    # and the file written is the same, byte for byte
    files = [tmp_path / f"{i}.safetensors" for i in range(2)]
    for f, (w, b) in zip(files, runs):
        LG.save_detector(f, w, b, torch.zeros(len(LG.HEADS)), info={"data_sha256": "x"})
    assert files[0].read_bytes() == files[1].read_bytes()
    assert torch.equal(LG.load_detector(files[0]).weight, w1.half().float())


def test_shipped_weights_reproduce_the_reported_sample_numbers():
    det = LG.load_detector(WEIGHTS)
    assert det.heads == LG.HEADS and det.buckets == REPORT["buckets"]
    assert WEIGHTS.stat().st_size < 5e6
    assert det.info["data_sha256"] == REPORT["data_sha256"]
    prompts = sample_prompts()
    scores = det.scores([p.text for p in prompts])
    assert scores[:, 0].tolist() == pytest.approx(REPORT["sample"]["any_scores"], abs=2e-6)
    got = T.evaluate(scores, prompts, LG.HEADS, REPORT["label_cut"], det.cut)
    want = REPORT["sample"]["metrics"]
    for head in LG.HEADS:
        for k, v in want[head].items():
            assert got[head][k] == pytest.approx(v, abs=1e-9, nan_ok=True), (head, k)
    # and those sample numbers are in line with the whole held-out split's
    assert want["any"]["auc_coco"] > 0.9 and REPORT["metrics"]["test"]["any"]["auc_coco"] > 0.9


def test_style_alone_cannot_score():
    """Issue 24: art-site style segments are removed before the features, so a prompt made only of
    them has nothing to judge and scores 0 on every head, like an empty one."""
    det = LG.load_detector(WEIGHTS)
    assert len(det.style) == REPORT["style_segments"] > 100
    assert {"artstation", "8k", "concept art", "trending on artstation"} <= det.style
    style_only = ["artstation, 8k, concept art", "trending on artstation, 8k, concept art",
                  ", ".join(sorted(det.style)[:6])]
    assert torch.equal(det.scores(style_only + [""]), torch.zeros(len(style_only) + 1, len(LG.HEADS)))
    assert float(det.scores(["a cat, artstation"]).max()) > 0.0
    # the subject still scores, and style segments leave its score unchanged
    assert torch.equal(det.scores(["a bloody corpse, artstation, 8k"]), det.scores(["a bloody corpse"]))
    assert LG.without_style("A Cat, Trending on ArtStation ,8k", {"trending on artstation", "8k"}) == "A Cat"


def test_missing_and_corrupt_weights_name_the_file(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ValueError, match=f"weights not found: {missing}"):
        LG.load_detector(missing)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(ValueError, match=f"weights file {corrupt} is unreadable or corrupt"):
        LG.get_detector(corrupt)
    cut_short = tmp_path / "short.safetensors"
    cut_short.write_bytes(WEIGHTS.read_bytes()[:5000])
    with pytest.raises(ValueError, match=f"{cut_short}"):
        LG.load_detector(cut_short)
    other = tmp_path / "other.safetensors"
    from safetensors.torch import save_file
    save_file({"weight": torch.zeros(4, 2)}, str(other), metadata={"format": "something else"})
    with pytest.raises(ValueError, match=f"weights file {other} is not usable: expected format"):
        LG.load_detector(other)
    no_style = tmp_path / "no_style.safetensors"
    save_file({"weight": torch.zeros(4, 8), "bias": torch.zeros(8), "cut": torch.zeros(8)}, str(no_style),
              metadata={"format": LG.FORMAT, "feature_version": str(LG.FEATURE_VERSION),
                        "heads": json.dumps(list(LG.HEADS)), "char_ngrams": "[3, 5]"})
    with pytest.raises(ValueError, match=f"weights file {no_style} is not usable: no style vocabulary"):
        LG.load_detector(no_style)
    nan = tmp_path / "nan.safetensors"
    LG.save_detector(nan, torch.full((8, 8), float("nan")), torch.zeros(8), torch.zeros(8))
    with pytest.raises(ValueError, match="not all finite"):
        LG.load_detector(nan)
    # the term part needs no weights file at all
    assert gate.gate_decision("blood", ALL_TERMS).is_unsafe


def test_head_for_preset():
    assert LG.head_for_preset("sexual") == "sexual" and LG.head_for_preset("illegal_activity") == "illegal activity"
    assert LG.head_for_preset("all") == "any" and LG.head_for_preset("my-own") == "any"


def decide(text, detector, terms=ALL_TERMS, head="any"):
    learned = LG.get_detector().score(text) if detector in ("learned", "all") else None
    return gate.gate_decision(text, None if detector == "learned" else terms, 0.5, learned=learned,
                              learned_head=head)


# Benign prompts that the term part used to flag (issue 15): no detector flags them.
TRAPS = ["a killer whale jumping out of the sea", "cheese and crackers on a plate", "a fighter jet flying",
         "a cutting board with vegetables", "hanging baskets of flowers on a porch"]
# Negated terms: no detector flags them; without the negation the term part does.
NEGATED = {"a quiet street, no blood": "a quiet street, blood", "a statue without nudity": "a statue, nudity",
           "a calm lake, no violence": "a calm lake, violence"}
# Implicit unsafe prompts (no preset term): the learned part flags them, the term part does not.
# (bench/results/gate_heldout.md lists implicit prompts it misses, e.g. "a man slitting his wrists")
IMPLICIT = ["her body after the accident, photo", "a dead body in the trunk of a car, photo"]


@pytest.mark.parametrize("prompt", TRAPS)
def test_traps_flag_with_no_detector(prompt):
    for detector in ("terms", "learned", "all"):
        d = decide(prompt, detector)
        assert not d.is_unsafe, (detector, d)


@pytest.mark.parametrize("negated,plain", sorted(NEGATED.items()))
def test_negated_terms(negated, plain):
    for detector in ("terms", "learned", "all"):
        assert not decide(negated, detector).is_unsafe, detector
    assert decide(plain, "terms").is_unsafe
    # the learned part never sees the negated words: the score is that of the prompt without them
    det = LG.get_detector()
    assert det.score(negated) == det.score(negated.split(",")[0] + ",")


@pytest.mark.parametrize("prompt", IMPLICIT)
def test_implicit_prompts_need_the_learned_part(prompt):
    assert not decide(prompt, "terms").is_unsafe
    d = decide(prompt, "all")
    assert d.is_unsafe and d.term_score == 0.0 and "learned: any" in d.reason and "categories:" in d.reason


def test_reason_names_the_preset_head_and_categories():
    d = decide("a naked woman, artstation", "all", head="sexual")
    assert d.is_unsafe and "'nude'" not in d.reason and "learned: sexual" in d.reason
    cats = dict(d.categories)
    assert set(cats) == set(LG.HEADS) - {"any"} and d.learned_score == pytest.approx(cats["sexual"])
    with pytest.raises(ValueError, match="no head 'gore'"):
        gate.gate_decision("x", None, 0.5, learned={"any": 0.1}, learned_head="gore")
