"""Presets: parsing, loading from several folders, composing the safety-context text (pure)."""
import json

import pytest

from pack_import import PACK_DIR, load_pure

pr = load_pure("presets")

PRESET = pr.Preset("violence", "d", "peaceful, no blood", ("blood", "knife fight", "gore"), "gore")


def write(d, name, text):
    p = d / name
    p.write_text(text)
    return p


def test_shipped_presets_cover_every_i2p_category():
    presets, errors = pr.load_presets([PACK_DIR / "safety_contexts"])
    assert errors == []
    assert set(presets) == {"sexual", "violence", "shocking", "hate", "harassment", "self-harm",
                            "illegal activity", "all"}
    for p in presets.values():
        assert p.context and p.unsafe_terms and p.description and p.negative
    assert set(presets["sexual"].unsafe_terms) <= set(presets["all"].unsafe_terms)


def test_append_strip_replace():
    assert pr.compose_safe_text("a bloody knife fight", PRESET, "append") == "a bloody knife fight, peaceful, no blood"
    assert pr.compose_safe_text("Blood on a KNIFE  fight, at night", PRESET, "strip") == "on a, at night, peaceful, no blood"
    assert pr.compose_safe_text("anything", PRESET, "replace", "sunny") == "peaceful, no blood, sunny"
    assert pr.compose_safe_text("", PRESET, "append") == "peaceful, no blood"


def test_strip_matches_whole_words_only():
    assert pr.strip_terms("bloodhound and goretex, no blood", ["blood", "gore"]) == "bloodhound and goretex, no"
    assert pr.strip_terms("GORE", ["gore"]) == ""


def test_replace_with_empty_context_is_an_error():
    empty = pr.Preset("e", "d", "", ("x",))
    with pytest.raises(ValueError, match="replace mode needs a context"):
        pr.compose_safe_text("p", empty, "replace", "  ")
    with pytest.raises(ValueError, match="mode must be one of"):
        pr.compose_safe_text("p", PRESET, "rewrite")


def test_malformed_files_are_reported_by_path_and_line_and_skipped(tmp_path):
    good = {"name": "mine", "description": "d", "context": "c", "unsafe_terms": ["t"]}
    write(tmp_path, "a_good.json", json.dumps(good))
    write(tmp_path, "b_syntax.json", '{\n  "name": "x",\n  "context": oops\n}')
    write(tmp_path, "c_types.json", '{"name": "y", "description": "d",\n "context": "c",\n "unsafe_terms": "t"}')
    write(tmp_path, "d_missing.json", '{"name": "z"}')
    write(tmp_path, "e_list.json", '[1, 2]')
    presets, errors = pr.load_presets([PACK_DIR / "safety_contexts", tmp_path])
    assert "mine" in presets and "sexual" in presets
    assert len(errors) == 4
    assert any("b_syntax.json:3:" in e and "not valid JSON" in e for e in errors)
    assert any("c_types.json:3:" in e and "'unsafe_terms' must be a list" in e for e in errors)
    assert any("d_missing.json:1:" in e and "missing key 'description'" in e for e in errors)
    assert any("e_list.json:1:" in e for e in errors)


def test_user_folder_overrides_a_shipped_preset(tmp_path):
    mine = {"name": "sexual", "description": "mine", "context": "in a suit", "unsafe_terms": ["nude"]}
    write(tmp_path, "sexual.json", json.dumps(mine))
    presets, _ = pr.load_presets([PACK_DIR / "safety_contexts", tmp_path])
    assert presets["sexual"].context == "in a suit"
