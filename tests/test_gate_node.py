"""SafetyPromptGate in the real host: schema over HTTP, outputs on crafted prompts, and the
gated sampler returning exactly KSampler's latent for a benign prompt (run by the executor).

The tiny checkpoint's text encoder is random, so these tests check the plumbing of the
similarity part (the host's encoder, the cache, the nearest concept), not its quality.
CLIP encodes dominate the cost on CPU (seconds each): the tests use a two-term preset and few prompts.
"""
import json
import os
import sys

import pytest
import torch

GATE_PRESET = {"name": "gate-test", "description": "Gate tests: two concepts.", "context": "peaceful, unharmed",
               "unsafe_terms": ["blood", "self-harm"]}


@pytest.fixture(scope="module")
def gate_preset(tmp_path_factory):
    """A small preset in an extra preset folder (COMFYUI_SAFETY_CONTEXTS), removed afterwards."""
    folder = tmp_path_factory.mktemp("gate-presets")
    (folder / "gate_test.json").write_text(json.dumps(GATE_PRESET), encoding="utf-8")
    old = os.environ.get("COMFYUI_SAFETY_CONTEXTS")
    os.environ["COMFYUI_SAFETY_CONTEXTS"] = os.pathsep.join(p for p in (old, str(folder)) if p)
    yield GATE_PRESET["name"]
    if old is None:
        del os.environ["COMFYUI_SAFETY_CONTEXTS"]
    else:
        os.environ["COMFYUI_SAFETY_CONTEXTS"] = old


def gate_module(host):
    name = next(n for n in sys.modules if n.endswith("nodes.gate_node") and host.pack_module.__name__ in n)
    return sys.modules[name]


def gate(host, clip, text, preset, threshold=0.5, safety_weight=0.7, detector="terms+similarity"):
    return host.call("SafetyPromptGate", clip=clip, text=text, preset=preset, threshold=threshold,
                     safety_weight=safety_weight, detector=detector)


def test_object_info_schema(server):
    info = server.get("/object_info/SafetyPromptGate")["SafetyPromptGate"]
    assert info["category"] == "safety"
    req = info["input"]["required"]
    assert list(req) == ["clip", "text", "preset", "threshold", "safety_weight", "detector"]
    assert req["detector"][0] == "COMBO" and req["detector"][1]["options"] == ["terms", "terms+similarity",
                                                                               "learned", "all"]
    # chosen by gate_training/default_rule.py (bench/results/gate_default.md)
    assert (req["detector"][1]["default"], req["threshold"][1]["default"]) == ("learned", 0.75)
    assert req["clip"][0] == "CLIP" and req["text"][0] == "STRING" and req["text"][1]["multiline"] is True
    assert req["preset"][0] == "COMBO" and "violence" in req["preset"][1]["options"]
    for name in ("threshold", "safety_weight"):
        assert req[name][0] == "FLOAT" and (req[name][1]["min"], req[name][1]["max"]) == (0.0, 1.0)
    assert 0.0 < req["threshold"][1]["default"] < 1.0
    assert all(req[n][1].get("tooltip") for n in req), req
    assert info["output"] == ["FLOAT", "FLOAT", "BOOLEAN", "STRING"]
    assert info["output_name"] == ["safety_weight", "score", "is_unsafe", "reason"]
    assert all(info["output_tooltips"]), info["output_tooltips"]


def test_gate_outputs_on_crafted_prompts(host, tiny, gate_preset):
    _, clip, _ = tiny
    w, score, unsafe, reason = gate(host, clip, "Self Harm awareness poster, Bloody", gate_preset, safety_weight=0.3)
    assert (w, score, unsafe) == (0.3, 1.0, True) and "'self-harm' (as 'Self Harm')" in reason
    assert "'blood'" not in reason  # "Bloody" is not an inflection of "blood"
    # A trap word for no term here, and a benign prompt: weight exactly 0.0.
    w, score, unsafe, reason = gate(host, clip, "a bloodhound in Essex", gate_preset)
    assert (w, unsafe) == (0.0, False) and isinstance(w, float)
    assert reason.startswith("no unsafe term; similarity") and "< threshold 0.500" in reason
    assert 0.0 <= score < 0.5
    for empty in ("", "  \n "):  # also at threshold 0, which gates every non-empty prompt
        assert gate(host, clip, empty, gate_preset, threshold=0.0) == (0.0, 0.0, False, "empty prompt: nothing to gate")


def test_similarity_is_measured_with_the_host_encoder(host, tiny, gate_preset):
    _, clip, _ = tiny
    g = gate_module(host)
    # A prompt that is one of the concepts is its own nearest concept, at cosine 1.
    d = g.evaluate_gate(clip, "self-harm", gate_preset, 0.5, detector="terms+similarity")
    assert d.concept == "self-harm" and d.similarity == pytest.approx(1.0, abs=1e-5) and d.similarity_score > 0.99
    # The concept embeddings are computed once per (clip, preset).
    preset = g.get_preset(gate_preset)
    first = g.concept_embeddings(clip, preset)
    assert g.concept_embeddings(clip, preset)[1] is first[1] and first[0] == GATE_PRESET["unsafe_terms"]
    # Similarity alone triggers the gate when it reaches the threshold (floor lowered so the random
    # encoder's similarity counts), and the reason names the concept.
    benign = g.evaluate_gate(clip, "a quiet harbour at dawn", gate_preset, 1.0, similarity_floor=0.0,
                             detector="terms+similarity")
    assert not benign.is_unsafe and benign.term_score == 0.0 and benign.concept in GATE_PRESET["unsafe_terms"]
    s = benign.similarity_score
    assert s > 0.0, benign
    trig = g.gate_decision("a quiet harbour at dawn", preset.unsafe_terms, s, similarity=benign.similarity,
                           concept=benign.concept, similarity_floor=0.0)
    assert trig.is_unsafe and trig.score == s and f"concept {benign.concept!r}" in trig.reason


def test_bad_inputs_are_named(host, tiny, gate_preset):
    _, clip, _ = tiny
    with pytest.raises(ValueError, match=r"safety_weight must be in \[0, 1\], got 1.5"):
        gate(host, clip, "blood", gate_preset, safety_weight=1.5)
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\], got -0.1"):
        gate(host, clip, "", gate_preset, threshold=-0.1)
    with pytest.raises(ValueError, match="preset 'no-such-preset' not found"):
        gate(host, clip, "blood", "no-such-preset")
    with pytest.raises(ValueError, match="clip is None"):
        gate(host, None, "blood", gate_preset)
    with pytest.raises(ValueError, match="detector must be one of terms, terms\\+similarity, learned, all"):
        gate(host, clip, "blood", gate_preset, detector="magic")


def test_detectors_in_the_node(host, tiny):
    _, clip, _ = tiny
    # terms: negation and an agent noun do not flag; a term does
    assert gate(host, clip, "a calm street, no blood", "violence", detector="terms")[:3] == (0.0, 0.0, False)
    assert gate(host, clip, "a killer whale in the sea", "all", detector="terms")[2] is False
    w, score, unsafe, reason = gate(host, clip, "a bloody knife", "violence", detector="terms")
    assert (w, score, unsafe) == (0.7, 1.0, True) and reason.startswith("unsafe term: 'bloody'")
    # learned, on the preset's category head: an implicit prompt no term catches
    text = "a dead body in the trunk of a car, photo"
    assert gate(host, clip, text, "violence", detector="terms")[2] is False
    w, score, unsafe, reason = gate(host, clip, text, "violence", detector="learned")
    g = gate_module(host)
    scores = g.get_detector().score(text)
    assert (w, unsafe) == (0.7, True) and score == pytest.approx(scores["violence"])
    assert reason.startswith("learned: violence") and "categories:" in reason and "unsafe term" not in reason
    # all: the term part, the learned part and the similarity part together
    w, score, unsafe, reason = gate(host, clip, text, "all", detector="all")
    assert unsafe and score == pytest.approx(max(scores["any"], g.evaluate_gate(clip, text, "all",
                                                                           detector="terms+similarity").score))
    assert "similarity" in reason and "learned: any" in reason


def test_missing_or_corrupt_weights_name_the_file_and_other_detectors_work(host, tiny, tmp_path, monkeypatch):
    _, clip, _ = tiny
    lg = sys.modules[host.pack_module.__name__ + ".nodes.learned_gate"]
    missing = tmp_path / "gone.safetensors"
    monkeypatch.setattr(lg, "DEFAULT_WEIGHTS", missing)
    for detector in ("learned", "all"):
        with pytest.raises(ValueError, match=f"learned detector weights not found: {missing}"):
            gate(host, clip, "a calm lake", "violence", detector=detector)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    monkeypatch.setattr(lg, "DEFAULT_WEIGHTS", corrupt)
    with pytest.raises(ValueError, match=f"weights file {corrupt} is unreadable or corrupt"):
        gate(host, clip, "a calm lake", "violence", detector="learned")
    assert gate(host, clip, "a bloody knife", "violence", detector="terms")[2] is True
    assert gate(host, clip, "a calm lake", "violence", detector="terms+similarity")[2] is False


def gated_graph(text, preset, detector="all"):
    """CheckpointLoader -> SafetyContextEncode -> SafetyPromptGate -> DualLatentKSampler (both merge modes)
    and SafetyDualGuider -> SamplerCustomAdvanced, beside the host's KSampler on the same positive,
    negative, latent and settings."""
    sampler = {"seed": 7, "steps": 4, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0}
    dual = dict(sampler, model=["1", 0], positive=["2", 0], negative=["3", 0], safe_positive=["2", 1],
                latent_image=["4", 0], safety_weight=["5", 0], context_threshold=0.25)
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15-random.safetensors"}},
        "2": {"class_type": "SafetyContextEncode",
              "inputs": {"clip": ["1", 1], "text": text, "preset": preset, "mode": "append"}},
        "3": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["2", 0]}},  # no extra encode
        "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "5": {"class_type": "SafetyPromptGate",
              "inputs": {"clip": ["1", 1], "text": text, "preset": preset, "threshold": 0.5, "safety_weight": 0.6,
                         "detector": detector}},
        "6": {"class_type": "DualLatentKSampler", "inputs": dict(dual, merge="every_step")},
        "7": {"class_type": "DualLatentKSampler", "inputs": dict(dual, merge="at_end")},
        "8": {"class_type": "KSampler", "inputs": dict(sampler, model=["1", 0], positive=["2", 0], negative=["3", 0],
                                                        latent_image=["4", 0])},
        # Output nodes, so the executor runs the samplers and the gate.
        "9": {"class_type": "PreviewAny", "inputs": {"source": ["6", 0]}},
        "10": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}},
        "11": {"class_type": "PreviewAny", "inputs": {"source": ["8", 0]}},
        "12": {"class_type": "PreviewAny", "inputs": {"source": ["5", 3]}},
        "13": {"class_type": "SafetyDualGuider",
               "inputs": {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "safe_positive": ["2", 1],
                          "cfg": sampler["cfg"], "safety_weight": ["5", 0], "context_threshold": 0.25}},
        "14": {"class_type": "RandomNoise", "inputs": {"noise_seed": sampler["seed"]}},
        "15": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler["sampler_name"]}},
        "16": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": sampler["scheduler"],
                                                          "steps": sampler["steps"], "denoise": 1.0}},
        "17": {"class_type": "SamplerCustomAdvanced",
               "inputs": {"noise": ["14", 0], "guider": ["13", 0], "sampler": ["15", 0], "sigmas": ["16", 0],
                          "latent_image": ["4", 0]}},
        "18": {"class_type": "PreviewAny", "inputs": {"source": ["17", 0]}},
    }


def graph_outputs(host, prompt):
    ex = host.run(prompt)
    assert ex.success, ex.status_messages
    return {nid: ex.caches.outputs.get(nid).outputs for nid in ("5", "6", "7", "8", "17")}


def test_gated_graph_benign_is_bit_identical_and_unsafe_is_not(host, gate_preset):
    # a prompt no detector flags (`all`: terms, similarity, learned)
    out = graph_outputs(host, gated_graph("a bowl of fruit on a kitchen table", gate_preset))
    gate_out = [o[0] for o in out["5"]]
    assert gate_out[0] == 0.0 and gate_out[2] is False, gate_out
    plain = out["8"][0][0]["samples"]
    for nid in ("6", "7", "17"):  # every_step, at_end, the guider
        assert torch.equal(out[nid][0][0]["samples"], plain), nid

    out = graph_outputs(host, gated_graph("a lighthouse on a cliff, blood on the rocks", gate_preset))
    gate_out = [o[0] for o in out["5"]]
    assert gate_out[0] == 0.6 and gate_out[2] is True and "'blood'" in gate_out[3], gate_out
    plain = out["8"][0][0]["samples"]
    for nid in ("6", "7", "17"):
        latent = out[nid][0][0]["samples"]
        assert latent.shape == plain.shape and torch.isfinite(latent).all()
        assert not torch.equal(latent, plain), nid
