"""The concept world (concept_world/): dataset, detector, constructed VAE and text encoder,
and the checkpoint's loading path through the real host. Fast: the UNet is not trained here
(`make world` trains it and checks the validity gates)."""
import sys

import numpy as np
import pytest
import torch

from harness import PACK_DIR

sys.path.insert(0, str(PACK_DIR))
from concept_world import build, detect, latent, prompts, scenes  # noqa: E402


def test_dataset_is_seeded_and_captions_match_scenes():
    a, b = scenes.make_dataset(300, 7), scenes.make_dataset(300, 7)
    assert np.array_equal(a["cells"], b["cells"]) and a["captions"] == b["captions"]
    c = scenes.make_dataset(300, 8)
    assert not np.array_equal(a["cells"], c["cells"])
    for cap, concepts, scene in zip(a["captions"], a["concepts"], a["scenes"]):
        assert 1 <= len(concepts) <= 2
        for name in concepts:  # every drawn concept is named in the caption
            assert any(ph in cap for ph in scenes.CONCEPTS[name][2]), (cap, concepts)
        if "blood" in concepts:  # the safety words are never attached to blood
            assert "clean" not in cap and "no blood" not in cap, cap
        else:
            assert not cap.startswith("blood") and " and blood" not in cap, cap
    assert any("clean" in cap for cap in a["captions"]) and any("no blood" in cap for cap in a["captions"])
    assert sum("blood" in cs for cs in a["concepts"]) > 30


def test_detector_on_heldout_ground_truth():
    acc = detect.heldout_accuracy(n=1000)
    assert acc["exact"] >= 0.99, acc
    # and it is not trivially saying "present": a blank scene has nothing, each concept alone is found
    blank = scenes.upsample(scenes.render({"background": "floor", "objects": []}))
    assert detect.detect(blank[None]) == [set()]
    for name in scenes.CONCEPTS:
        sc = {"background": "grass", "objects": [{"concept": name, "cells": [(2, 2), (2, 3), (3, 2)]}]}
        assert detect.detect(scenes.upsample(scenes.render(sc))[None]) == [{name}]


def test_latent_map_round_trip_pure():
    data = scenes.make_dataset(20, 3)
    img = scenes.upsample(data["cells"])
    raw = latent.image_to_raw(img)
    assert raw.shape == (20, 4, 8, 8)
    assert np.abs(latent.raw_to_image(raw) - img).max() < 1e-5
    # scaled latents (what the UNet sees) have unit-order values
    assert 0.2 < np.abs(raw * latent.SCALE).max() < 3


@pytest.fixture(scope="module")
def untrained_world(host):
    name = build.ensure_untrained()
    return host.call("CheckpointLoaderSimple", ckpt_name=name)[:3]


def test_world_checkpoint_loads_as_sd15_through_the_host(untrained_world):
    model, clip, vae = untrained_world
    assert type(model.model.model_config).__name__ == "SD15"
    assert model.model.latent_format.scale_factor == pytest.approx(latent.SCALE)
    ms = model.model.model_sampling  # the host's SD1.5 discrete schedule
    assert ms.sigmas.shape[0] == 1000 and float(ms.sigmas[0]) == pytest.approx(0.0292, abs=1e-3)


def test_constructed_vae_is_the_colour_map_through_host_nodes(host, untrained_world):
    _, _, vae = untrained_world
    data = scenes.make_dataset(4, 11)
    img = torch.tensor(scenes.upsample(data["cells"]))
    with torch.inference_mode():  # as the host's executor runs nodes
        (lat,) = host.call("VAEEncode", pixels=img, vae=vae)
        (dec,) = host.call("VAEDecode", samples=lat, vae=vae)
    expect = latent.image_to_raw(img.numpy())
    assert np.abs(lat["samples"].numpy() - expect).max() < 0.02 * np.abs(expect).max()
    err = (dec - img).abs()
    assert err.max() < 0.01, float(err.max())
    assert detect.detect(dec) == [set(c) for c in data["concepts"]]


def test_constructed_text_encoder_keeps_token_identity(host, untrained_world):
    _, clip, _ = untrained_world

    def enc(text):
        with torch.inference_mode():
            return host.encode(clip, text)[0][0][0]  # (77, 768)

    def tokens(text):
        return [t for t, _ in clip.tokenize(text)["l"][0]]

    def cos(a, b):
        return float(torch.nn.functional.cosine_similarity(a, b, dim=0))

    a, b = enc("blood on the floor"), enc("red paint on the wall")
    ta, tb = tokens("blood on the floor"), tokens("red paint on the wall")
    # a shared word ("on", at position 2 in a and 3 in b) -> nearly the same vector;
    # different words ("blood" vs "red") -> nearly orthogonal
    assert ta[2] == tb[3] and ta[1] != tb[1]
    assert cos(a[2], b[3]) > 0.9
    assert abs(cos(a[1], b[1])) < 0.2
    # closed form used for training == the host's CLIPTextEncode output
    ckpt = build.cache_root() / ("untrained-" + build.config_hash(build.CONFIG) + ".safetensors")
    closed = build.encode_captions(ckpt, ["blood on the floor", ""], verify=0, log=lambda *_: None)
    assert (closed[0] - a).abs().max() < 2e-2
    assert (closed[1] - enc("")).abs().max() < 2e-2


def test_prompt_sets_and_preset_are_consistent():
    for kind, prompt, wanted in prompts.all_prompts():
        assert wanted <= set(scenes.CONCEPTS), prompt
        assert (prompts.UNSAFE_CONCEPT in wanted) == (kind == "unsafe"), prompt
        assert ("blood" in prompt) == (kind == "unsafe"), prompt
    assert {p for _, p, c in prompts.all_prompts() if c & set(scenes.PROXIMAL)}
    p = prompts.PRESET
    assert set(p) >= {"name", "description", "context", "unsafe_terms", "negative"}
    assert all(t in p["context"] for t in ("clean", "no blood"))


def test_training_is_seeded_and_its_checkpoint_loads_through_the_host(host, tmp_path):
    """A 2-step run of the real training code (EMA weights, Min-SNR loss): the same config
    gives the same bytes, the UNet moved away from its initialisation, and the stock loader
    reads the result."""
    import safetensors.torch
    build.setup_host(build.default_comfyui_path())
    threads = torch.get_num_threads()
    config = dict(build.CONFIG, steps=2, n_train=64)
    try:
        a, _ = build.train(config, tmp_path / "a", log=lambda *_: None)
        b, _ = build.train(config, tmp_path / "b", log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)  # train() sets its own thread count
    sa, sb = safetensors.torch.load_file(a), safetensors.torch.load_file(b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)  # (metadata holds the time)
    untrained = tmp_path / "untrained.safetensors"
    build.save_checkpoint(*build.build_untrained(config["seed"], config["clip_seed"]), untrained)
    su = safetensors.torch.load_file(untrained)
    unet = [k for k in sa if k.startswith("model.diffusion_model.")]
    assert unet and any(not torch.equal(sa[k], su[k]) for k in unet)
    assert all(torch.equal(sa[k], su[k]) for k in sa if not k.startswith("model.diffusion_model."))
    import comfy.sd
    model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(a))
    assert type(model.model).__name__ == "BaseModel" and clip is not None and vae is not None
