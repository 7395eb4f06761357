"""What a ComfyUI user expects of the method's nodes: batches, img2img, inpainting,
every sampler and scheduler, cfg 1, progress and previews, and clear errors."""
import math

import pytest
import torch

from method_helpers import Setup, same


@pytest.fixture(scope="module")
def s(host, tiny):
    return Setup(host, tiny)


def test_encode_outputs_are_the_hosts_own_encodings(s):
    assert torch.equal(s.positive[0][0], s.host.encode(s.clip, "a naked woman on a beach")[0][0])
    assert torch.equal(s.safe[0][0], s.host.encode(s.clip, s.safe_text)[0][0])
    assert s.safe_text.startswith("a naked woman on a beach, fully clothed")
    _, _, stripped = s.host.call("SafetyContextEncode", clip=s.clip, text="a NAKED woman, nude, on a beach",
                                 preset="sexual", mode="strip")
    assert stripped.startswith("a woman, on a beach, fully clothed")


def test_batch_img2img_and_inpainting(s):
    init = {"samples": torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))}
    for merge in ("every_step", "at_end"):
        out = s.dual(0.5, 0.2, merge, latent_image=init, denoise=0.6)
        assert out[0]["samples"].shape == (3, 4, 8, 8)
        assert same(s.dual(0.0, 0.2, merge, latent_image=init, denoise=0.6)[0], s.ksampler(latent_image=init, denoise=0.6))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1.0
    inpaint = {"samples": init["samples"][:1], "noise_mask": mask}
    for merge in ("every_step", "at_end"):
        latent, user, safe, _ = s.dual(0.5, 0.2, merge, latent_image=inpaint)
        assert latent["noise_mask"] is mask and user["noise_mask"] is mask
        moved = (latent["samples"] - inpaint["samples"]).abs()
        outside, inside = moved[..., :2, :].max(), moved[..., 2:6, 2:6].mean()
        assert outside < 1e-3 * inside, (outside, inside)   # the host keeps the unmasked part


@pytest.mark.parametrize("merge", ["every_step", "at_end"])
def test_every_sampler_name_is_accepted(s, merge):
    import comfy.samplers
    for name in comfy.samplers.SAMPLER_NAMES:
        if name == "dpm_adaptive":
            continue  # adaptive step count: covered below with a bounded budget
        out = s.dual(0.5, 0.5, merge, sampler_name=name, steps=2)
        assert torch.isfinite(out[0]["samples"]).all(), name


def test_every_scheduler_and_adaptive_sampler(s):
    import comfy.samplers
    for name in comfy.samplers.SCHEDULER_NAMES:
        out = s.dual(0.5, 0.3, "every_step", scheduler=name, steps=4)
        assert same(s.dual(0.0, 0.3, "every_step", scheduler=name, steps=4)[0], s.ksampler(scheduler=name, steps=4))
        assert torch.isfinite(out[0]["samples"]).all(), name
    out = s.dual(0.5, 0.3, "every_step", sampler_name="dpm_adaptive", steps=2)
    assert torch.isfinite(out[0]["samples"]).all()


def test_cfg_one_like_a_guidance_distilled_model(s):
    for merge in ("every_step", "at_end"):
        assert same(s.dual(0.0, 0.3, merge, cfg=1.0)[0], s.ksampler(cfg=1.0))
        assert same(s.dual(1.0, 0.0, merge, cfg=1.0)[0], s.ksampler(positive=s.safe, cfg=1.0))
        assert not same(s.dual(0.5, 0.3, merge, cfg=1.0)[0], s.ksampler(cfg=1.0))


def test_progress_bar_and_previews(s, monkeypatch):
    import comfy.cli_args
    import comfy.utils
    import latent_preview
    events = []
    monkeypatch.setattr(latent_preview, "args", comfy.cli_args.args)
    monkeypatch.setattr(comfy.cli_args.args, "preview_method", latent_preview.LatentPreviewMethod.Latent2RGB)
    old = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda v, t, preview, **kw: events.append((v, t, preview is not None)))
    try:
        s.dual(0.5, 0.5, "every_step", steps=6)
        assert [(v, t) for v, t, _ in events] == [(i, 6) for i in range(1, 7)]
        assert all(p for _, _, p in events)
        events.clear()
        s.dual(0.5, 0.5, "at_end", steps=6)   # k = 3: 6 user steps + 3 safe steps
        assert [(v, t) for v, t, _ in events] == [(i, 9) for i in range(1, 10)]
    finally:
        comfy.utils.set_progress_bar_global_hook(old)


def test_cancel_stops_within_one_step(s):
    import comfy.model_management
    from method_helpers import recorded_model
    m, log = recorded_model(s.model)
    inner = log.wrapper

    def interrupting(apply_model, args):
        if len(log.calls) == 2:
            comfy.model_management.interrupt_current_processing(True)
        return inner(apply_model, args)
    m.set_model_unet_function_wrapper(interrupting)
    for merge in ("every_step", "at_end"):
        log.reset()
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            s.dual(0.5, 0.0, merge, model=m, steps=20)
        comfy.model_management.interrupt_current_processing(False)
        assert len(log.calls) == 3  # the step that saw the request finished, nothing after it


# -- bad input --------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("safety_weight", 1.5), ("safety_weight", -0.1),
                                         ("context_threshold", 2.0), ("safety_weight", math.nan)])
def test_out_of_range_is_refused_by_the_function(s, field, value):
    kw = {"safety_weight": 0.5, "context_threshold": 0.2, field: value}
    with pytest.raises(ValueError, match=field):
        s.dual(merge="every_step", **kw)


def test_empty_safe_positive_and_nan_latent_are_refused(s):
    with pytest.raises(ValueError, match="safe_positive is empty"):
        s.host.call("DualLatentKSampler", positive=s.positive, safe_positive=[], safety_weight=0.5,
                    context_threshold=0.0, merge="every_step", **s.common())
    bad = torch.zeros(1, 4, 8, 8)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="latent_image holds 1 NaN"):
        s.dual(0.5, 0.0, "at_end", latent_image={"samples": bad})
    with pytest.raises(ValueError, match="latent_image has 3 channels"):
        s.dual(0.5, 0.0, "at_end", latent_image={"samples": torch.ones(1, 3, 8, 8)})


def test_unknown_preset_and_empty_replace_context_at_run_time(s):
    with pytest.raises(ValueError, match="preset 'gone' not found; available: all, harassment"):
        s.host.call("SafetyContextEncode", clip=s.clip, text="x", preset="gone", mode="append")
    with pytest.raises(ValueError, match="clip is None"):
        s.host.call("SafetyContextEncode", clip=None, text="x", preset="sexual", mode="append")


def test_unknown_sampler_or_scheduler_is_refused_not_replaced(s):
    # The host's KSampler would quietly fall back to its first sampler/scheduler.
    with pytest.raises(ValueError, match="sampler_name must be one of"):
        s.dual(0.5, 0.2, "every_step", sampler_name="euler_typo")
    with pytest.raises(ValueError, match="scheduler must be one of"):
        s.dual(0.5, 0.2, "at_end", scheduler="nope")
