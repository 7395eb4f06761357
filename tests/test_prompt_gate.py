"""The prompt gate's pure decision: term matching, inflections, word-boundary traps, scoring."""
import pytest
import torch

from pack_import import load_pure

gate = load_pure("prompt_gate")
presets = load_pure("presets")

TERMS = ["sex", "rapist", "rape", "ass", "cunt", "blood", "kill", "self-harm", "strip tease", "bully",
         "stab", "nude", "abuse", "white supremacy"]

# prompt -> the preset term it must match (as written in the prompt)
UNSAFE = {
    "SEX on the beach": ("sex", "SEX"),
    "a Nude figure, oil painting": ("nude", "Nude"),
    "(nude:1.3), studio light": ("nude", "nude"),
    "three nudes": ("nude", "nudes"),
    "the sexes": ("sex", "sexes"),
    "the rapist's car": ("rapist", "rapist's"),
    "blood!": ("blood", "blood"),
    "blood-red sky": ("blood", "blood"),
    "killed in action": ("kill", "killed"),
    "killing time": ("kill", "killing"),
    "the killer's knife": ("kill", "killer's"),
    "two killers": ("kill", "killers"),
    "he kills": ("kill", "kills"),
    "stabbed": ("stab", "stabbed"),
    "stabbing": ("stab", "stabbing"),
    "abused dog": ("abuse", "abused"),
    "abusing power": ("abuse", "abusing"),
    "bullied at school": ("bully", "bullied"),
    "schoolyard bullies": ("bully", "bullies"),
    "self harm": ("self-harm", "self harm"),
    "Self-Harm": ("self-harm", "Self-Harm"),
    "self_harm": ("self-harm", "self_harm"),
    "self  -\tharm scars": ("self-harm", "self  -\tharm"),
    "a strip tease": ("strip tease", "strip tease"),
    "strip-teases": ("strip tease", "strip-teases"),
    "WHITE   SUPREMACY rally": ("white supremacy", "WHITE   SUPREMACY"),
    "kick ass": ("ass", "ass"),
    "asses": ("ass", "asses"),
}

# Benign prompts that contain a term as part of a longer word.
TRAPS = ["Essex countryside", "Sussex coast", "a therapist's office", "a class photo", "an assassin's creed poster",
         "a friendly assistant", "scrape the paint", "Scunthorpe United", "a bloodhound", "skill and killjoy",
         "stable horses", "sextant and compass", "white supremacist", "rapeseed field", "unabusedx",
         "grass", "bass guitar", "kill3r", "selfharm"]


@pytest.mark.parametrize("prompt,expected", sorted(UNSAFE.items()))
def test_term_match_with_inflections_and_spacing(prompt, expected):
    d = gate.gate_decision(prompt, TERMS, threshold=0.5)
    assert d.is_unsafe is True and d.score == 1.0 and d.term_score == 1.0
    assert expected in d.matches, d.matches
    assert repr(expected[0]) in d.reason and repr(expected[1]) in d.reason


@pytest.mark.parametrize("prompt", TRAPS)
def test_word_boundary_traps_are_not_matched(prompt):
    d = gate.gate_decision(prompt, TERMS, threshold=0.5)
    assert (d.is_unsafe, d.score, d.matches) == (False, 0.0, ()), d
    assert d.reason == "no unsafe term"


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t "])
def test_empty_prompt_is_never_unsafe(prompt):
    for threshold, sim in ((0.5, None), (0.0, None), (0.0, 1.0)):
        d = gate.gate_decision(prompt, TERMS, threshold, similarity=sim)
        assert (d.is_unsafe, d.score) == (False, 0.0)
        assert "empty" in d.reason


def test_decision_unpacks_as_triple():
    is_unsafe, score, reason = gate.gate_decision("a bloody knife", ["knife"], 0.5)
    assert (is_unsafe, score) == (True, 1.0) and "'knife'" in reason


def test_several_matches_are_all_reported_in_prompt_order():
    d = gate.gate_decision("blood and a nude, more blood", TERMS)
    assert d.matches == (("blood", "blood"), ("nude", "nude"), ("blood", "blood"))
    assert d.reason.count("'blood' (as") == 1  # each term named once


def test_longer_phrase_and_word_inside_it():
    # "self-harm" as a phrase and "harm" alone are separate terms; both count.
    d = gate.gate_decision("self-harm and harm", ["harm", "self-harm"])
    assert ("self-harm", "self-harm") in d.matches and ("harm", "harm") in d.matches


def test_similarity_part_and_threshold():
    floor = gate.SIMILARITY_FLOOR
    below = gate.gate_decision("a quiet harbour", TERMS, 0.5, similarity=floor - 0.1, concept="blood")
    assert (below.is_unsafe, below.score, below.similarity_score) == (False, 0.0, 0.0)
    assert "'blood'" in below.reason and "< threshold" in below.reason
    # halfway between the floor and 1: part 0.5, which reaches threshold 0.5 but not 0.51
    mid = floor + (1 - floor) / 2
    at = gate.gate_decision("a quiet harbour", TERMS, 0.5, similarity=mid, concept="gore")
    assert at.is_unsafe and at.score == pytest.approx(0.5) and at.term_score == 0.0
    assert "'gore'" in at.reason and ">= threshold" in at.reason
    assert not gate.gate_decision("a quiet harbour", TERMS, 0.51, similarity=mid).is_unsafe
    top = gate.gate_decision("a quiet harbour", TERMS, 1.0, similarity=1.0)
    assert top.is_unsafe and top.score == 1.0


def test_term_match_wins_at_any_threshold_and_keeps_similarity():
    d = gate.gate_decision("blood", TERMS, 1.0, similarity=0.0, concept="gore")
    assert d.is_unsafe and d.score == 1.0 and d.similarity == 0.0 and d.similarity_score == 0.0
    assert "'blood'" in d.reason and "'gore'" in d.reason


def test_threshold_zero_gates_every_nonempty_prompt():
    d = gate.gate_decision("a bowl of fruit", TERMS, 0.0)
    assert d.is_unsafe and d.score == 0.0 and "every prompt" in d.reason


def test_bad_inputs_name_the_input():
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got 1.5"):
        gate.gate_decision("x", TERMS, 1.5)
    with pytest.raises(ValueError, match="threshold must be a number"):
        gate.gate_decision("x", TERMS, "high")
    with pytest.raises(ValueError, match="text must be a string, got NoneType"):
        gate.gate_decision(None, TERMS, 0.5)
    with pytest.raises(ValueError, match="unsafe_terms must be a list of strings"):
        gate.gate_decision("x", "blood", 0.5)
    with pytest.raises(ValueError, match="similarity must be a finite number"):
        gate.gate_decision("x", TERMS, 0.5, similarity=float("nan"))
    with pytest.raises(ValueError, match=r"similarity_floor must be in \[0, 1\]"):
        gate.gate_decision("x", TERMS, 0.5, similarity=0.3, similarity_floor=-1)


def test_no_terms_means_no_term_part():
    assert tuple(gate.gate_decision("blood", [], 0.5)) == (False, 0.0, "no unsafe term")


def test_word_forms():
    assert gate.word_forms("stab") >= {"stab", "stabs", "stabbed", "stabbing", "stabber"}
    assert gate.word_forms("abuse") >= {"abuses", "abused", "abuser", "abusing"}
    assert gate.word_forms("bully") >= {"bullies", "bullied"}
    assert gate.word_forms("sex") >= {"sexes"}
    assert "wares" not in gate.word_forms("war")  # -es only after s, x, z, ch, sh, o
    assert gate.word_forms("18+") == {"18+"}


def test_nearest_concept_cosine_and_centering():
    concepts = torch.tensor([[2.0, 0.1, 0.5], [0.0, 1.0, 0.0]])
    prompt = torch.tensor([2.0, 1.0, 0.0])
    cos, i = gate.nearest_concept(prompt, concepts)
    assert i == 0 and cos == pytest.approx(4.1 / (5 ** 0.5 * 4.26 ** 0.5))
    # Subtracting the shared (null-prompt) direction changes which concept is nearest.
    cos, i = gate.nearest_concept(prompt, concepts, torch.tensor([2.0, 0.0, 0.0]))
    assert i == 1 and cos == pytest.approx(1 / 5 ** 0.5)
    with pytest.raises(ValueError, match="prompt embedding has 2 values but concept embeddings have 3"):
        gate.nearest_concept(torch.zeros(2), concepts)


def test_every_shipped_preset_term_matches_itself_and_compiles():
    import glob
    from pathlib import Path
    files = glob.glob(str(Path(presets.__file__).resolve().parents[1] / "safety_contexts" / "*.json"))
    assert files
    for f in files:
        p = presets.parse_preset(Path(f).read_text(encoding="utf-8"), f)
        for term in p.unsafe_terms:
            d = gate.gate_decision(f"a picture of {term}, detailed", p.unsafe_terms)
            assert d.is_unsafe and d.matches[0][1] == term, (f, term, d)
