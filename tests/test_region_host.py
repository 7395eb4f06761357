"""Issue 13's invariants on the real host, bit for bit: the safety stream acts only inside the
region (a given MASK or the `auto` region found from the two branches)."""
import pytest
import torch

from method_helpers import Setup, recorded_model, same

MERGES = ["every_step", "at_end"]


@pytest.fixture(scope="module")
def s(host, tiny):
    return Setup(host, tiny)


def half_mask(batch=1, size=64):
    """Pixel-space MASK: white on the top half (aligned to latent pixels)."""
    m = torch.zeros(batch, size, size)
    m[:, : size // 2] = 1.0
    return m


def latent_mask(px, size=8):
    """The latent-resolution region the host's helper makes of a pixel-space mask."""
    import comfy.utils
    return comfy.utils.reshape_mask(px.unsqueeze(1), (px.shape[0], 1, size, size))


# -- empty and full regions ------------------------------------------------------------

@pytest.mark.parametrize("merge", MERGES)
def test_empty_region_is_exactly_ksampler_with_no_extra_call(s, merge):
    m, log = recorded_model(s.model)
    ref = s.ksampler(model=m)
    ref_calls = log.sizes()
    for kw in (dict(region_mode="mask", region=torch.zeros(1, 64, 64)),
               dict(region_mode="auto", region_threshold=1.0)):   # nothing can be above 1
        log.reset()
        latent, user, safe, region = s.dual(0.6, 0.3, merge, model=m, **kw)
        assert same(latent, ref) and same(user, ref)
        assert log.sizes() == ref_calls == [2] * 6, kw
        assert region.shape == (1, 64, 64) and float(region.abs().sum()) == 0.0


@pytest.mark.parametrize("merge", MERGES)
def test_auto_with_nothing_above_threshold_is_exactly_ksampler(s, merge):
    """A safety context that changes nothing (here: the prompt itself) leaves no change above any
    threshold; the dual steps still run (the region is not known before), and give KSampler's."""
    m, log = recorded_model(s.model)
    ref = s.ksampler(model=m)
    log.reset()
    latent, user, _, region = s.host.call(
        "DualLatentKSampler", positive=s.positive, safe_positive=s.positive, safety_weight=0.6,
        context_threshold=0.3, merge=merge, region_mode="auto", region_threshold=0.5, **s.common(model=m))[:4]
    assert float(region.sum()) == 0.0
    assert same(latent, ref) and same(user, ref)
    assert log.sizes() == ([2, 2] + [3] * 4 if merge == "every_step" else [2] * 10)


@pytest.mark.parametrize("merge", MERGES)
@pytest.mark.parametrize("w,tau", [(0.6, 0.3), (1.0, 0.0), (1.0, 0.5)])
def test_full_region_is_the_global_method(s, merge, w, tau):
    glob = s.dual(w, tau, merge)
    full = s.dual(w, tau, merge, region_mode="mask", region=torch.ones(1, 64, 64))
    for a, b in zip(glob[:3], full[:3]):
        assert same(a, b)
    assert torch.equal(glob[3], torch.ones(1, 64, 64)) and torch.equal(full[3], glob[3])


def test_region_output_without_region_and_at_weight_zero(s):
    assert torch.equal(s.dual(0.5, 0.2, "every_step")[3], torch.ones(1, 64, 64))
    assert torch.equal(s.dual(0.0, 0.2, "at_end", region_mode="auto")[3], torch.zeros(1, 64, 64))


# -- the merge inside and outside the region -------------------------------------------------

@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m_sde"])
@pytest.mark.parametrize("w", [0.4, 1.0])
def test_at_end_outside_is_user_latent_inside_the_weighted_sum(s, sampler, w):
    px = half_mask()
    latent, user, safe, region = s.dual(w, 0.3, "at_end", sampler_name=sampler, region_mode="mask", region=px)
    m = latent_mask(px).expand_as(latent["samples"]) == 1
    assert same(user, s.ksampler(sampler_name=sampler))
    z, zu, zs = latent["samples"], user["samples"], safe["samples"]
    assert torch.equal(z[~m], zu[~m])
    assert torch.equal(z[m], ((1 - w) * zu + w * zs)[m])
    assert not torch.equal(zu[m], zs[m])
    assert torch.equal(region, px)   # the region that acted, at pixel size


def test_at_end_soft_mask_weights_per_pixel(s):
    px = torch.linspace(0, 1, 64).view(1, 1, 64).expand(1, 64, 64).contiguous()
    latent, user, safe, _ = s.dual(0.8, 0.3, "at_end", region_mode="mask", region=px)
    wm = 0.8 * latent_mask(px).double()
    expect = (1 - wm).float() * user["samples"] + wm.float() * safe["samples"]
    assert torch.equal(latent["samples"], expect)


@pytest.mark.parametrize("w", [0.5, 1.0])
def test_every_step_merges_the_denoised_estimate_per_pixel(s, w):
    """The guider's merged estimate is (1 - w m) D_u + w m D_s at every step after tau: read in a
    post-cfg hook (the host passes the merged positive as cond_denoised) against the branches."""
    h = s.host
    px = half_mask()
    seen = []
    model = s.model.clone()
    (guider,) = h.call("SafetyDualGuider", model=model, positive=s.positive, negative=s.negative,
                       safe_positive=s.safe, cfg=6.0, safety_weight=w, context_threshold=0.25,
                       region_mode="mask", region=px)
    model.set_model_sampler_post_cfg_function(
        lambda args: seen.append((args["cond_denoised"].clone(), guider.last_branches)) or args["denoised"])
    guider.model_patcher = model  # the hook is on this clone
    (noise,) = h.call("RandomNoise", noise_seed=3)
    (sampler,) = h.call("KSamplerSelect", sampler_name="euler")
    (sigmas,) = h.call("BasicScheduler", model=model, scheduler="normal", steps=8, denoise=1.0)
    h.call("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
           latent_image=h.empty_latent(64, 64, 1))
    dual = [(c, b) for c, b in seen if b is not None]
    assert len(dual) == 6   # k = 2 of 8 steps: 6 dual steps
    m = latent_mask(px).expand_as(dual[0][0]) == 1
    for cond, (user, _, safe) in dual[-6:]:
        assert torch.equal(cond[~m], user[~m])
        assert torch.equal(cond[m], ((1 - w) * user + w * safe)[m])


@pytest.mark.parametrize("merge", MERGES)
def test_guider_and_sampler_agree_and_auto_adds_no_model_call(s, merge):
    steps = 10
    m, log = recorded_model(s.model)
    s.dual(0.5, 0.4, merge, model=m, steps=steps)
    glob_calls = log.sizes()
    log.reset()
    latent, user, safe, region = s.dual(0.5, 0.4, merge, model=m, steps=steps, region_mode="auto",
                                        region_threshold=0.8)
    assert log.sizes() == glob_calls   # every_step: [2]*4 + [3]*6; at_end: [2]*16
    assert 0.0 < float(region.mean()) < 1.0
    if merge == "at_end":
        lm = torch.nn.functional.max_pool2d(region[:, None], 8) == 1   # back to latent pixels
        inside = lm.expand_as(latent["samples"])
        assert torch.equal(latent["samples"][~inside], user["samples"][~inside])
        assert torch.equal(latent["samples"][inside], (0.5 * user["samples"] + 0.5 * safe["samples"])[inside])


def test_auto_region_with_refresh_adds_no_model_call(s):
    """With refresh r the reused steps' safety estimate (user + last correction) feeds the auto region."""
    m, log = recorded_model(s.model)
    s.dual(0.5, 0.2, "every_step", model=m, steps=10, refresh=2)
    glob_calls = log.sizes()
    log.reset()
    region = s.dual(0.5, 0.2, "every_step", model=m, steps=10, refresh=2, region_mode="auto",
                    region_threshold=0.8)[3]
    assert log.sizes() == glob_calls == [2, 2] + [3, 2] * 4
    assert 0.0 < float(region.mean()) < 1.0


def test_custom_sampler_guider_with_region_equals_dual_ksampler(s):
    h = s.host
    latent = h.empty_latent(64, 64, 2)
    for kw in (dict(region_mode="mask", region=half_mask(2)), dict(region_mode="auto", region_threshold=0.8)):
        (guider,) = h.call("SafetyDualGuider", model=s.model, positive=s.positive, negative=s.negative,
                           safe_positive=s.safe, cfg=6.0, safety_weight=0.7, context_threshold=0.25, **kw)
        (noise,) = h.call("RandomNoise", noise_seed=11)
        (sampler,) = h.call("KSamplerSelect", sampler_name="euler_ancestral")
        (sigmas,) = h.call("BasicScheduler", model=s.model, scheduler="karras", steps=8, denoise=1.0)
        runs = [h.call("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                       latent_image=latent)[0] for _ in range(2)]
        assert same(runs[0], runs[1])   # the auto region starts afresh on every run
        ours = s.dual(0.7, 0.25, "every_step", seed=11, steps=8, cfg=6.0, sampler_name="euler_ancestral",
                      scheduler="karras", latent_image=latent, **kw)
        assert same(runs[0], ours[0])
        assert 0.0 < float(ours[3].mean()) < 1.0   # a partial region: not the global method
        assert not same(runs[0], s.dual(0.7, 0.25, "every_step", seed=11, steps=8, cfg=6.0,
                                        sampler_name="euler_ancestral", scheduler="karras",
                                        latent_image=latent)[0])


def test_guider_with_an_empty_region_is_the_hosts_cfg_guider_call_for_call(s):
    h = s.host
    m, log = recorded_model(s.model)
    (noise,) = h.call("RandomNoise", noise_seed=5)
    (sampler,) = h.call("KSamplerSelect", sampler_name="euler")
    (sigmas,) = h.call("BasicScheduler", model=m, scheduler="normal", steps=6, denoise=1.0)
    runs = []
    for guider in (h.call("CFGGuider", model=m, positive=s.positive, negative=s.negative, cfg=6.0)[0],
                   h.call("SafetyDualGuider", model=m, positive=s.positive, negative=s.negative, safe_positive=s.safe,
                          cfg=6.0, safety_weight=0.8, context_threshold=0.0, region_mode="mask",
                          region=torch.zeros(1, 64, 64))[0]):
        log.reset()
        out = h.call("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                     latent_image=h.empty_latent(64, 64, 1))[0]
        runs.append((out, log.sizes()))
    assert same(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1] == [2] * 6


# -- batches, img2img, inpainting, video ------------------------------------------------------

@pytest.mark.parametrize("merge", MERGES)
def test_a_different_mask_per_batch_item(s, merge):
    latent = s.host.empty_latent(64, 64, 2)
    px = torch.stack([torch.zeros(64, 64), half_mask()[0]])
    out, user, safe, region = s.dual(0.6, 0.3, merge, latent_image=latent, region_mode="mask", region=px)
    ref = s.ksampler(latent_image=latent)
    # the item with an empty region is the plain KSampler's: bit for bit with at_end (its user
    # stream is the host's own 2-cond call); with every_step its user branch comes out of the
    # batched 3-cond call (the safe branch now batches with it, issue 12), whose float summation
    # order differs from KSampler's 2-cond call in the last bits
    if merge == "at_end":
        assert torch.equal(out["samples"][0], ref["samples"][0])
    else:
        assert torch.allclose(out["samples"][0], ref["samples"][0], rtol=1e-5, atol=1e-3)
    assert not torch.equal(out["samples"][1], ref["samples"][1])
    assert torch.equal(region, px)


@pytest.mark.parametrize("merge", MERGES)
def test_img2img_and_inpainting_with_a_region(s, merge):
    init = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    px = half_mask()
    m = latent_mask(px).expand(1, 4, 8, 8) == 1
    out, user, _, _ = s.dual(0.5, 0.2, merge, latent_image={"samples": init}, denoise=0.6,
                             region_mode="mask", region=px)
    assert same(user, s.ksampler(latent_image={"samples": init}, denoise=0.6)) or merge == "every_step"
    if merge == "at_end":
        assert torch.equal(out["samples"][~m], user["samples"][~m])
    noise_mask = torch.zeros(1, 1, 8, 8)
    noise_mask[..., 2:6, 2:6] = 1.0   # inpaint the centre; the region is the top half
    inpaint = {"samples": init, "noise_mask": noise_mask}
    out, user, _, region = s.dual(0.5, 0.2, merge, latent_image=inpaint, region_mode="mask", region=px)
    assert out["noise_mask"] is noise_mask
    moved = (out["samples"] - init).abs()
    assert moved[..., :2, :].max() < 1e-3 * moved[..., 2:6, 2:6].mean()   # the host keeps the rest
    if merge == "at_end":
        assert torch.equal(out["samples"][~m], user["samples"][~m])
    assert torch.equal(region, px)


def test_video_latent_masks_are_fitted_per_frame_by_the_hosts_helper(host):
    """The test host loads no video model: the fitting of [frames, H, W] masks to a 5-D latent
    is checked with the host's own comfy.utils.reshape_mask."""
    import comfy.utils
    from pack_import import load_pure
    rg = load_pure("region")
    frames = torch.zeros(9, 64, 64)
    frames[5:] = 1.0   # the second half of the clip
    fitted = rg.fit_mask(frames, (1, 16, 3, 8, 8), comfy.utils.reshape_mask)
    assert fitted.shape == (1, 1, 3, 8, 8)
    assert float(fitted[:, :, 0].max()) == 0.0 and float(fitted[:, :, 2].min()) == 1.0
    assert rg.fit_mask(frames[:1], (2, 16, 3, 8, 8), comfy.utils.reshape_mask).shape == (2, 1, 3, 8, 8)


# -- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    (dict(region_mode="none", region=torch.ones(1, 64, 64)), "region is connected but region_mode is 'none'"),
    (dict(region_mode="auto", region=torch.ones(1, 64, 64)), "region is connected but region_mode is 'auto'"),
    (dict(region_mode="mask"), "region_mode is 'mask' but no region is connected"),
    (dict(region_mode="mask", region=torch.ones(3, 64, 64)), "region has 3 masks but the latent batch has 1"),
    (dict(region_mode="mask", region=torch.ones(1, 64, 128)), "region is 128x64"),
    (dict(region_mode="auto", region_threshold=1.5), "region_threshold must be in"),
    (dict(region_mode="wherever"), "region_mode must be one of"),
])
@pytest.mark.parametrize("merge", MERGES)
def test_bad_region_input_is_refused_by_name(s, kw, match, merge):
    with pytest.raises(ValueError, match=match):
        s.dual(0.5, 0.2, merge, **kw)


def test_bad_region_input_on_the_guider_and_at_validation(s):
    with pytest.raises(ValueError, match="region is connected but region_mode is 'none'"):
        s.host.call("SafetyDualGuider", model=s.model, positive=s.positive, negative=s.negative,
                    safe_positive=s.safe, cfg=6.0, safety_weight=0.5, context_threshold=0.2,
                    region=torch.ones(1, 64, 64))
    for node in ("DualLatentKSampler", "SafetyDualGuider"):
        assert "region_mode must be one of" in s.host.node(node).validate_inputs(region_mode="x")
        assert s.host.node(node).validate_inputs(region_mode="auto") is True
