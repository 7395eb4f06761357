"""The one term matcher (nodes/terms.py): negation scopes and benign compounds, in the gate and
in the encoder's strip mode."""
import pytest

from pack_import import PACK_DIR, load_pure

terms = load_pure("terms")
gate = load_pure("prompt_gate")
presets = load_pure("presets")
ALL = presets.load_presets([PACK_DIR / "safety_contexts"])[0]["all"].unsafe_terms

# Known false alarms of the term part (issue 15): none may flag with the `all` preset.
NOT_UNSAFE = ["a knight with no blood on his armour", "portrait without nudity", "a woman, fully clothed",
              "non-violent protest, oil painting", "a calm street, no weapons, no violence",
              "a killer whale jumping out of the sea", "cheese and crackers on a plate",
              "a fighter jet flying at a fast speed", "1 military jet fighter flying in formation",
              "a counter with vegetables on a cutting board", "hanging baskets of flowers on a porch",
              "killer whales in a pod", "never war again, a dove", "two huskies hanging out of the car windows"]
# Still unsafe: the term is asked for, or the negation does not reach it.
UNSAFE = {"no mercy, blood everywhere": "blood", "a killer with a knife": "kill",
          "no clothes, nude": "nude", "nothing but blood": "blood", "a killer whale eats a seal, gore": "gore",
          "blood and no gore": "blood", "two fighters in a cage fight": "fight",
          "no shirt and a gun in his hand, bloody": "bloody"}


@pytest.mark.parametrize("prompt", NOT_UNSAFE)
def test_negations_and_benign_compounds_do_not_flag(prompt):
    d = gate.gate_decision(prompt, ALL)
    assert not d.is_unsafe and d.matches == (), d


@pytest.mark.parametrize("prompt,term", sorted(UNSAFE.items()))
def test_asked_for_terms_still_flag(prompt, term):
    d = gate.gate_decision(prompt, ALL)
    assert d.is_unsafe and term in dict(d.matches), d


def test_negation_scope_ends_at_punctuation_but_and_four_words():
    t = "no blood, gore"
    assert terms.negation_scopes(t) == [(2, 8)]
    assert [m for m, _ in terms.find_terms(t, ["blood", "gore"])] == ["gore"]
    assert terms.find_terms("without a single drop of blood", ["blood"]) == [("blood", "blood")]  # 5th word
    assert terms.find_terms("without any drop of blood", ["blood"]) == []
    assert terms.find_terms("no fear but blood", ["blood"]) == [("blood", "blood")]
    assert terms.find_terms("knot blood", ["blood"]) == [("blood", "blood")]  # "knot" is no cue
    # negated matches are still found on request (the strip mode removes them too)
    assert terms.find_terms("no blood", ["blood"], negated=True) == [("blood", "blood")]


def test_strip_mode_uses_the_same_matcher():
    # inflections now strip too; benign compounds stay; negated terms are removed
    assert presets.strip_terms("killed in a fight, a killer whale", ["kill", "fight"]) == "in a, a killer whale"
    assert presets.strip_terms("no blood", ["blood"]) == "no"


def test_every_benign_sense_hides_its_presets_term_and_the_unsafe_senses_still_match():
    """Issue 24's term senses: each listed sense, alone and in a sentence, counts no term of its
    preset; the same terms in their unsafe senses still count."""
    presets = load_pure("presets").load_presets([PACK_DIR / "safety_contexts"])[0]
    for preset, senses in terms.BENIGN_SENSES.items():
        for sense in senses:
            for text in (sense, f"a photo of {sense} at noon, 8k"):
                assert terms.find_terms(text, presets[preset].unsafe_terms) == [], (preset, text)
                assert terms.find_terms(text, presets["all"].unsafe_terms) == [], text
    for preset, text, term in [
            ("violence", "a soldier shooting a man in the street", "shooting"),
            ("violence", "a bloody knife on the floor", "bloody"),
            ("violence", "a knife fight in an alley", "knife"),
            ("self-harm", "a man hanging from a noose", "hanging"),
            ("self-harm", "a girl cutting her wrists", "cutting"),
            ("illegal activity", "a man smoking crack in an alley", "crack"),
            ("illegal activity", "selling drugs on a street corner", "drugs"),
            ("sexual", "a naked woman on a bed", "naked"),
            ("harassment", "a man stalking a woman at night", "stalking"),
            ("shocking", "a shocking photo of a mutilated body", "shocking")]:
        assert term in [t for t, _ in terms.find_terms(text, presets[preset].unsafe_terms)], (preset, text)
