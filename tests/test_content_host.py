"""Issue 23 on the real host: the content check (a detector inside sampling) acts only on the items
and inside the regions where it fires, and leaves everything else as KSampler made it, bit for bit."""
import time

import numpy as np
import pytest
import torch

from method_helpers import Setup, recorded_model, same

nudenet = pytest.importorskip("nudenet", reason="the optional NudeNet package (requirements-dev.txt)")


def pack(host, name):
    import importlib
    return importlib.import_module(f"{host.pack_module.__name__}.nodes.{name}")


@pytest.fixture(scope="module")
def s(host, tiny):
    return Setup(host, tiny)


def nudenet_check(host, vae, classes=None, **over):
    kw = dict(vae=vae, classes=classes or "FEMALE_BREAST_EXPOSED, FEMALE_GENITALIA_EXPOSED",
              score_threshold=0.5, check_start=0.0, check_every=1, go_back=0, grow=1)
    kw.update(over)
    return host.call("SafetyDetectorNudeNet", **kw)[0]


# -- NudeNet on a real photograph -----------------------------------------------------------

def test_nudenet_on_a_real_photograph_finds_the_face_box_and_nothing_unsafe(host):
    from skimage import data
    nn = pack(host, "nudenet_detector")
    image = torch.from_numpy(data.astronaut()).float().div(255.0)[None]   # [1, 512, 512, 3]
    t0 = time.perf_counter()
    (face,) = nn.NudeNetDetector(("FACE_FEMALE",), min_score=0.5).detect(image)
    took = time.perf_counter() - t0
    print(f"\nNudeNet: {took * 1000:.0f} ms for one 512 px image (the first call loads the model)")
    assert face.score > 0.5 and face.classes == ("FACE_FEMALE",)
    ys, xs = torch.nonzero(face.mask, as_tuple=True)
    # the box NudeNet gives for this photograph ([x, y, w, h] ~ [173, 82, 102, 98]), and nothing else
    assert abs(int(xs.min()) - 173) <= 8 and abs(int(ys.min()) - 82) <= 8
    assert abs(int(xs.max()) - 275) <= 8 and abs(int(ys.max()) - 180) <= 8
    assert float(face.mask.sum()) == float((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
    (default,) = nn.NudeNetDetector(nn.DEFAULT_CLASSES, 0.5).detect(image)
    assert default.score == 0.0 and float(default.mask.sum()) == 0.0
    t0 = time.perf_counter()
    nn.NudeNetDetector(nn.DEFAULT_CLASSES, 0.5).detect(image)
    print(f"NudeNet: {(time.perf_counter() - t0) * 1000:.0f} ms per 512 px image (model loaded)")


# -- nothing fires: KSampler bit for bit, KSampler's model calls ---------------------------------

@pytest.mark.parametrize("merge", ["every_step", "at_end"])
def test_with_nudenet_on_random_weights_nothing_fires_and_the_result_is_ksampler(s, host, merge):
    check = nudenet_check(host, s.vae)
    m, log = recorded_model(s.model)
    ref = s.ksampler(model=m)
    ref_calls = log.sizes()
    log.reset()
    latent, user, safe, region, report = s.dual_report(0.7, 0.2, merge, model=m, detector=check)
    assert same(latent, ref) and same(user, ref) and same(safe, ref)
    assert log.sizes() == ref_calls == [2] * 6       # no safety-branch call at all
    assert float(region.sum()) == 0.0
    assert report.startswith("item 0: nothing fired (5 checks")   # steps 2..6 (tau 0.2 of 6 -> k 1)


def test_guider_and_advanced_take_the_detector_too(s, host):
    check = nudenet_check(host, s.vae)
    ref = s.ksampler()
    (guider,) = host.call("SafetyDualGuider", model=s.model, positive=s.positive, negative=s.negative,
                          safe_positive=s.safe, cfg=7.0, safety_weight=0.7, context_threshold=0.2, detector=check)
    (sampler,) = host.call("KSamplerSelect", sampler_name="euler")
    (sigmas,) = host.call("BasicScheduler", model=s.model, scheduler="normal", steps=6, denoise=1.0)
    (noise,) = host.call("RandomNoise", noise_seed=7)
    out, _ = host.call("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                       latent_image=s.empty_latent())
    assert torch.equal(out["samples"], ref["samples"])
    adv = host.call("DualLatentKSamplerAdvanced", model=s.model, add_noise="enable", noise_seed=7, steps=6, cfg=7.0,
                    sampler_name="euler", scheduler="normal", positive=s.positive, negative=s.negative,
                    safe_positive=s.safe, latent_image=s.empty_latent(), start_at_step=0, end_at_step=10000,
                    return_with_leftover_noise="disable", safety_weight=0.7, context_threshold=0.2,
                    merge="every_step", detector=check)
    assert same(adv[0], ref) and "nothing fired" in adv[4]


# -- bad input ----------------------------------------------------------------------------------

def test_detector_inputs_are_checked_by_name(s, host, monkeypatch):
    node = host.node("SafetyDetectorNudeNet")
    assert node.validate_inputs(classes="FACE_FEMALE, BELLY_EXPOSED") is True
    assert "unknown NudeNet class names ['NAKED']" in node.validate_inputs(classes="naked")
    nn = pack(host, "nudenet_detector")
    monkeypatch.setattr(nn, "available", lambda: False)
    assert "pip install nudenet" in node.validate_inputs(classes="FACE_FEMALE")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="check_every"):
        nudenet_check(host, s.vae, check_every=0)
    with pytest.raises(ValueError, match="region_mode"):
        s.dual(0.5, 0.2, "every_step", detector=nudenet_check(host, s.vae), region_mode="auto")


def test_a_latent_that_is_neither_image_nor_video_is_refused_by_name(s, host):
    ct = pack(host, "content")
    check = ct.ContentCheck(ct.BranchDifference(), None)
    with pytest.raises(ValueError, match=r"needs an image latent .* or a video latent .* got one of shape \(1, 4, 64\)"):
        s.dual(0.5, 0.2, "every_step", detector=check, latent_image={"samples": torch.zeros(1, 4, 64)})


def test_a_detector_that_fails_mid_run_fails_the_run(s, host):
    ct = pack(host, "content")

    class Broken:
        name = "broken"

        def detect(self, images):
            raise RuntimeError("the detector's model file is damaged")
    with pytest.raises(RuntimeError, match="damaged"):
        s.dual(0.5, 0.2, "every_step", detector=ct.ContentCheck(Broken(), s.vae, check_start=0.5))

    class Short:
        name = "short"

        def detect(self, images):
            return []
    with pytest.raises(RuntimeError, match="returned 0 results for 1 images"):
        s.dual(0.5, 0.2, "every_step", detector=ct.ContentCheck(Short(), s.vae))



# -- the branch-difference detector ---------------------------------------------------------------

def test_branch_difference_with_a_safety_text_equal_to_the_prompt_never_fires(s, host):
    (check,) = host.call("SafetyDetectorBranchDifference", score_threshold=0.05, region_threshold=0.5,
                         check_start=0.0, check_every=2, go_back=0, grow=1)
    m, log = recorded_model(s.model)
    ref = s.ksampler(model=m)
    log.reset()
    latent, user, _, region, report = host.call(
        "DualLatentKSampler", positive=s.positive, safe_positive=s.positive, safety_weight=0.7,
        context_threshold=0.2, merge="every_step", detector=check, **s.common(model=m))
    assert same(latent, ref) and same(user, ref) and float(region.sum()) == 0.0
    # KSampler's calls, and at each of the 3 checks (steps 2, 4, 6) one more call of the two branches
    assert log.sizes() == [2, 2, 2, 2, 2, 2, 2, 2, 2]
    assert report.startswith("item 0: nothing fired (3 checks, highest score 0.00)")


def test_a_gate_false_alarm_with_a_detector_leaves_the_image_as_ksampler_made_it(s, host):
    """The gate flags a prompt whose image shows nothing unsafe: with a detector connected the
    flagged prompt's image is KSampler's, bit for bit (nothing fires on random weights)."""
    text = "a naked mole rat in a zoo enclosure, wildlife photo"
    weight, _, flagged, reason = host.call("SafetyPromptGate", clip=s.clip, text=text, preset="sexual",
                                           threshold=0.5, safety_weight=0.8, detector="terms")
    assert flagged and weight == 0.8, reason          # the gate's false alarm (the word "naked")
    positive = host.encode(s.clip, text)
    ref = s.ksampler(positive=positive)
    latent, _, _, region, report = host.call(
        "DualLatentKSampler", positive=positive, safe_positive=s.safe, safety_weight=weight, context_threshold=0.2,
        merge="every_step", detector=nudenet_check(host, s.vae), **s.common())
    assert same(latent, ref) and float(region.sum()) == 0.0 and "nothing fired" in report
