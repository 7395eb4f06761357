"""METHOD.md's invariants on the real host, bit for bit (torch.equal)."""
import pytest
import torch

from method_helpers import Setup, recorded_model, same

MERGES = ["every_step", "at_end"]


@pytest.fixture(scope="module")
def s(host, tiny):
    return Setup(host, tiny)


@pytest.mark.parametrize("merge", MERGES)
def test_weight_zero_is_exactly_ksampler_with_no_extra_call(s, merge):
    m, log = recorded_model(s.model)
    ref = s.ksampler(model=m)
    ref_calls = len(log.calls)
    log.reset()
    out = s.dual(0.0, 0.4, merge, model=m)
    assert same(out[0], ref)
    assert len(log.calls) == ref_calls == 6 and log.sizes() == [2] * 6


@pytest.mark.parametrize("merge", MERGES)
@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m_sde"])
def test_weight_one_threshold_zero_is_ksampler_on_the_safety_context(s, merge, sampler):
    ref = s.ksampler(positive=s.safe, sampler_name=sampler)
    out = s.dual(1.0, 0.0, merge, sampler_name=sampler)
    assert same(out[0], ref)
    assert not same(out[0], s.ksampler(sampler_name=sampler))  # the context did change the image


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m_sde", "heun"])
@pytest.mark.parametrize("w,tau", [(0.5, 0.0), (0.3, 0.4), (1.0, 0.5)])
def test_at_end_is_the_weighted_sum_of_its_branches_and_user_is_ksampler(s, sampler, w, tau):
    latent, user, safe, _ = s.dual(w, tau, "at_end", sampler_name=sampler)
    assert same(user, s.ksampler(sampler_name=sampler))
    assert torch.equal(latent["samples"], (1 - w) * user["samples"] + w * safe["samples"])
    assert not torch.equal(user["samples"], safe["samples"])


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral", "dpmpp_2m"])
def test_first_k_steps_follow_the_user_stream_every_step(s, sampler):
    steps, tau = 10, 0.3  # k = 3
    m, log = recorded_model(s.model)
    s.ksampler(model=m, steps=steps, sampler_name=sampler)
    user_inputs = [c[2] for c in log.calls]
    log.reset()
    s.dual(0.6, tau, "every_step", model=m, steps=steps, sampler_name=sampler)
    dual_inputs = [c[2] for c in log.calls]
    # x_0..x_3 (the inputs of the first k + 1 model calls) are the user stream's, bit for bit;
    # from the first merged step on, the trajectory leaves it.
    for i in range(4):
        assert torch.equal(dual_inputs[i][:1], user_inputs[i][:1]), i
    assert not torch.equal(dual_inputs[4][:1], user_inputs[4][:1])
    assert log.sizes() == [2, 2, 2] + [3] * 7


@pytest.mark.parametrize("sampler", ["euler", "euler_ancestral"])
def test_at_end_safe_stream_starts_from_the_user_latent_after_k_steps(s, sampler):
    steps, tau = 10, 0.4  # k = 4
    m, log = recorded_model(s.model)
    s.dual(0.5, tau, "at_end", model=m, steps=steps, sampler_name=sampler)
    # N user calls, then N - k safe calls: the shared leading steps are not re-run.
    assert len(log.calls) == steps + (steps - 4)
    user, safe = log.calls[:steps], log.calls[steps:]
    assert torch.equal(safe[0][2], user[4][2])        # x_k handed over exactly
    assert safe[0][0] == user[4][0]                   # at the same noise level
    assert not torch.equal(safe[1][2], user[5][2])    # then the safety context takes over


def test_model_calls_per_step(s):
    steps = 10
    m, log = recorded_model(s.model)
    s.dual(0.5, 0.4, "every_step", model=m, steps=steps)        # k = 4: cfg > 1
    assert log.sizes() == [2] * 4 + [3] * 6
    assert [sorted(c[1]) for c in log.calls[-1:]] == [[0, 1, 2]]   # user, negative, safe in one batch
    log.reset()
    s.dual(0.5, 0.4, "every_step", model=m, steps=steps, cfg=1.0)  # cfg 1: no negative branch
    assert log.sizes() == [1] * 4 + [2] * 6
    log.reset()
    s.dual(0.5, 0.0, "at_end", model=m, steps=steps)
    assert log.sizes() == [2] * 20
    log.reset()
    s.dual(0.5, 1.0, "at_end", model=m, steps=steps)               # k = N: safe stream is all replay
    assert log.sizes() == [2] * 10


def test_custom_sampler_guider_equals_dual_ksampler(s):
    h = s.host
    steps, seed = 8, 11
    latent = h.empty_latent(64, 64, 2)
    (guider,) = h.call("SafetyDualGuider", model=s.model, positive=s.positive, negative=s.negative,
                       safe_positive=s.safe, cfg=6.0, safety_weight=0.4, context_threshold=0.25)
    (noise,) = h.call("RandomNoise", noise_seed=seed)
    (sampler,) = h.call("KSamplerSelect", sampler_name="euler_ancestral")
    (sigmas,) = h.call("BasicScheduler", model=s.model, scheduler="karras", steps=steps, denoise=1.0)
    out, _ = h.call("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=sigmas,
                    latent_image=latent)
    ours = s.dual(0.4, 0.25, "every_step", seed=seed, steps=steps, cfg=6.0, sampler_name="euler_ancestral",
                  scheduler="karras", latent_image=latent)
    assert same(out, ours[0])


def test_every_step_branch_outputs_bracket_the_result(s):
    latent, user, safe, _ = s.dual(0.5, 0.0, "every_step")
    # For euler the last step lands on the merged denoised estimate, so the result is the
    # weighted sum of the two branch estimates (up to float rounding of the cfg algebra).
    mix = 0.5 * user["samples"] + 0.5 * safe["samples"]
    assert torch.allclose(latent["samples"], mix, rtol=1e-4, atol=1e-3 * mix.abs().max().item())
    assert not torch.equal(user["samples"], safe["samples"])


def test_at_end_with_cfg_hooks_runs_the_shared_steps_for_real(s):
    # CFG++ samplers read the unconditional estimate through a post-cfg hook: replaying
    # outputs would starve the hook, so the safe stream evaluates its leading steps.
    m, log = recorded_model(s.model)
    latent, user, safe, _ = s.dual(0.5, 0.4, "at_end", model=m, steps=10, sampler_name="euler_ancestral_cfg_pp")
    assert len(log.calls) == 20
    assert same(user, s.ksampler(steps=10, sampler_name="euler_ancestral_cfg_pp"))
    assert torch.equal(latent["samples"], 0.5 * user["samples"] + 0.5 * safe["samples"])
