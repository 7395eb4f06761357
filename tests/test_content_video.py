"""Issue 23 on video, through the real host: a detector sees every decoded frame of each clip and
decides per clip (a clip fires when any frame does, and safety acts in the union of its firing
frames' regions on every latent frame); a clip where nothing fires is KSampler's, bit for bit.
The model is the family tests' tiny Wan 2.1 (UNETLoader); the VAE a tiny Wan 2.1 VAE made with the
host's own class and seeded weights, so the check decodes clips as a real Wan VAE does."""
import importlib

import pytest
import torch

from family_helpers import Family
from method_helpers import recorded_model

FRAMES = 5      # EmptyHunyuanLatentVideo length 5: 2 latent frames, 5 decoded frames
STEPS = 4


def pack(host, name):
    return importlib.import_module(f"{host.pack_module.__name__}.nodes.{name}")


def tiny_wan_vae():
    """The host's Wan 2.1 VAE at width 8 (0.9 M parameters), weights seeded: the host picks the
    class and its shape from the state dict, as its VAELoader does."""
    import comfy.ldm.wan.vae
    import comfy.sd
    shapes = comfy.ldm.wan.vae.WanVAE(dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                      temperal_downsample=[False, True, True], dropout=0.0).state_dict()
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in shapes.items():
        if k.endswith("gamma"):
            sd[k] = torch.ones(v.shape)
        elif v.ndim >= 2:
            sd[k] = torch.randn(v.shape, generator=g) / max(1, v[0].numel()) ** 0.5
        else:
            sd[k] = torch.zeros(v.shape)
    return comfy.sd.VAE(sd=sd)


@pytest.fixture(scope="module")
def wan(host):
    fam = Family(host, "wan21_t2v")
    fam.vae = tiny_wan_vae()
    fam.settings = lambda: dict(seed=7, steps=STEPS, cfg=4.0, sampler_name="euler", scheduler="simple", denoise=1.0)
    fam.batch = fam.empty_latent(batch_size=2)
    fam.ref = fam.ksampler(latent_image=fam.batch)
    return fam


class FiresOnOneFrame:
    """Fires once, on clip 0's fourth decoded frame, in the frame's left half; records what it saw."""
    name = "one frame of clip 0"

    def __init__(self, ct):
        self.ct, self.seen = ct, []

    def detect(self, images):
        self.seen.append(tuple(images.shape))
        first = len(self.seen) == 1
        out = []
        for i in range(images.shape[0]):
            mask = torch.zeros(images.shape[1:3])
            if first and i == 3:
                mask[:, : images.shape[2] // 2] = 1.0
                out.append(self.ct.ItemResult(0.9, mask, ("X",)))
            else:
                out.append(self.ct.ItemResult(0.0, mask))
        return out


@pytest.mark.parametrize("merge", ["every_step", "at_end"])
def test_a_clip_fires_on_one_frame_and_the_clip_beside_it_stays_ksamplers(wan, host, merge):
    ct = pack(host, "content")
    detector = FiresOnOneFrame(ct)
    check = ct.ContentCheck(detector, wan.vae, score_threshold=0.5, check_start=0.0, check_every=1, grow=0)
    latent, user, _, region, report = wan.dual_report(1.0, 0.25, merge, latent_image=wan.batch, detector=check)
    # every frame of both clips at the first check, then clip 1's frames alone
    assert detector.seen[0] == (2 * FRAMES, 64, 64, 3) and set(detector.seen[1:]) == {(FRAMES, 64, 64, 3)}
    lines = report.splitlines()
    assert "fired at step" in lines[0] and "X" in lines[0] and "nothing fired" in lines[1], report
    out, ref = latent["samples"], wan.ref["samples"]
    assert torch.equal(user["samples"], ref)
    assert torch.equal(out[1], ref[1])                        # the quiet clip: KSampler's, bit for bit
    assert not torch.equal(out[0], ref[0])
    left = out.shape[-1] // 2                                # the frame's left half is the latent's left half
    if merge == "at_end":                                     # outside the region: the user stream, bit for bit
        assert torch.equal(out[0, ..., left:], ref[0, ..., left:])
        assert not torch.equal(out[0, ..., :left], ref[0, ..., :left])
    # the region output: each latent frame of each clip, clip 0's left half on every frame
    latent_frames = ref.shape[2]
    assert region.shape == (2 * latent_frames, 64, 64)
    assert float(region[:latent_frames, :, :32].min()) == 1.0 and float(region[:latent_frames, :, 32:].max()) == 0.0
    assert float(region[latent_frames:].sum()) == 0.0


def test_video_with_nudenet_where_nothing_fires_is_ksampler_with_its_model_calls(wan, host):
    pytest.importorskip("nudenet", reason="the optional NudeNet package (requirements-dev.txt)")
    (check,) = host.call("SafetyDetectorNudeNet", vae=wan.vae, classes="FEMALE_BREAST_EXPOSED", score_threshold=0.5,
                         check_start=0.0, check_every=1, go_back=0, grow=1)
    m, log = recorded_model(wan.model)
    ref = wan.ksampler(model=m, latent_image=wan.batch)
    ref_calls = log.sizes()
    log.reset()
    latent, user, safe, region, report = wan.dual_report(0.7, 0.25, "every_step", model=m, latent_image=wan.batch,
                                                         detector=check)
    assert torch.equal(latent["samples"], ref["samples"]) and torch.equal(latent["samples"], wan.ref["samples"])
    assert log.sizes() == ref_calls                           # no safety-branch call at all
    assert float(region.sum()) == 0.0 and report.count("nothing fired (3 checks") == 2, report


def test_a_detector_that_returns_too_few_frame_results_fails_the_run(wan, host):
    ct = pack(host, "content")

    class PerClip:
        name = "one result per clip"

        def detect(self, images):
            return [ct.ItemResult(0.0)] * (images.shape[0] // FRAMES)
    with pytest.raises(RuntimeError, match=f"returned 2 results for {2 * FRAMES} video frames"):
        wan.dual(0.7, 0.25, "every_step", latent_image=wan.batch, detector=ct.ContentCheck(PerClip(), wan.vae))
