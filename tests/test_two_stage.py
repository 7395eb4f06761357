"""Two-stage sampling (issue 12, defect 3): DualLatentKSamplerAdvanced pairs against the host's
KSamplerAdvanced pairs, and SafetyDualGuider on split sigmas, on the real host, bit for bit.

The standard: our two-stage run equals our one-stage run exactly where the host's own
KSamplerAdvanced pair equals its one-stage KSampler (measured here first, per sampler), and
is as close to it as the host's own pair is elsewhere."""
import pytest
import torch

from method_helpers import Setup, recorded_model, same

STEPS = 8


@pytest.fixture(scope="module")
def s(host, tiny):
    return Setup(host, tiny)


def stage_args(s, sampler, model=None):
    return dict(model=model or s.model, noise_seed=7, steps=STEPS, cfg=7.0, sampler_name=sampler, scheduler="normal",
                positive=s.positive, negative=s.negative)


def host_pair(s, split, sampler, model=None):
    kw = stage_args(s, sampler, model)
    (a,) = s.host.call("KSamplerAdvanced", add_noise="enable", latent_image=s.host.empty_latent(64, 64, 1),
                       start_at_step=0, end_at_step=split, return_with_leftover_noise="enable", **kw)
    (b,) = s.host.call("KSamplerAdvanced", add_noise="disable", latent_image=a, start_at_step=split,
                       end_at_step=10000, return_with_leftover_noise="disable", **kw)
    return b


def our_pair(s, split, sampler, w, tau, merge, model=None):
    kw = dict(stage_args(s, sampler, model), safe_positive=s.safe, safety_weight=w, context_threshold=tau, merge=merge)
    a = s.host.call("DualLatentKSamplerAdvanced", add_noise="enable", latent_image=s.host.empty_latent(64, 64, 1),
                    start_at_step=0, end_at_step=split, return_with_leftover_noise="enable", **kw)
    return s.host.call("DualLatentKSamplerAdvanced", add_noise="disable", latent_image=a[0], start_at_step=split,
                       end_at_step=10000, return_with_leftover_noise="disable", **kw)


def one_stage(s, sampler, w, tau, merge, model=None):
    return s.dual(w, tau, merge, steps=STEPS, seed=7, sampler_name=sampler, model=model or s.model)


def max_diff(a, b):
    return float((a["samples"] - b["samples"]).abs().max())


# Measured on the SD1.5-format test model: the host's own KSamplerAdvanced pair is NOT its
# one-stage KSampler bit for bit, for any sampler: between the stages the latent leaves the
# model's space (x / 0.18215 out, x * 0.18215 back in), which costs the last bits (euler:
# relative 1e-6). Multistep solvers (dpmpp_2m) also restart their history at the second stage
# (max difference ~3 on latents of ~400) and ancestral samplers draw other noise there.
HOST_PAIR_EXACT = {"euler": False, "dpmpp_2m": False, "euler_ancestral": False}


@pytest.mark.parametrize("sampler", sorted(HOST_PAIR_EXACT))
def test_the_hosts_own_pair_against_its_one_stage_ksampler(s, sampler):
    one = s.ksampler(steps=STEPS, seed=7, sampler_name=sampler)
    pair = host_pair(s, 3, sampler)
    assert same(pair, one) == HOST_PAIR_EXACT[sampler]
    if sampler == "euler":   # only the round trip's rounding
        assert max_diff(pair, one) <= 1e-6 * float(one["samples"].abs().max())


@pytest.mark.parametrize("merge", ["every_step", "at_end"])
@pytest.mark.parametrize("sampler", sorted(HOST_PAIR_EXACT))
@pytest.mark.parametrize("split", [3, 5])
def test_weight_zero_pair_is_the_hosts_pair_bit_for_bit(s, merge, sampler, split):
    assert same(our_pair(s, split, sampler, 0.0, 0.5, merge)[0], host_pair(s, split, sampler))


@pytest.mark.parametrize("merge", ["every_step", "at_end"])
@pytest.mark.parametrize("split", [3, 4, 5])   # tau 0.5 over 8 steps: k = 4
def test_same_model_two_stage_equals_one_stage_to_the_hosts_own_standard(s, merge, split):
    # The host's pair is not bit-exact here (see above): ours is held to the host's own error
    # (euler: rounding only; for the other samplers the w 0 test above shows ours IS the host's pair).
    sampler = "euler"
    host_err = max_diff(host_pair(s, split, sampler), s.ksampler(steps=STEPS, seed=7, sampler_name=sampler))
    one = one_stage(s, sampler, 0.5, 0.5, merge)
    two = our_pair(s, split, sampler, 0.5, 0.5, merge)
    print(f"two-stage vs one-stage, {sampler} split {split} {merge}: host {host_err:.3g}, ours {max_diff(two[0], one[0]):.3g}")
    assert max_diff(two[0], one[0]) <= 2 * host_err
    if merge == "at_end":  # both streams were carried over: the user stream is the host's pair
        assert same(two[1], host_pair(s, split, sampler))
        assert max_diff(two[2], one[2]) <= 2 * host_err


def test_threshold_counts_steps_of_the_whole_schedule(s):
    m, log = recorded_model(s.model)
    our_pair(s, 4, "euler", 0.5, 0.5, "every_step", model=m)
    # tau 0.5 over 8 steps: the safety context applies at steps 5..8 (3-branch calls), not per stage.
    assert log.sizes() == [2] * 4 + [3] * 4
    log.reset()
    our_pair(s, 3, "euler", 0.5, 0.5, "at_end", model=m)
    # stage 1 (steps 1-3): user stream only; stage 2: user 5 steps + safe stream from step 5 (4 steps).
    assert log.sizes() == [2] * 3 + [2] * 5 + [2] * 4


def guider_pair(s, w, tau, split, full_sigmas, model=None):
    h, m = s.host, model or s.model
    (sigmas,) = h.call("BasicScheduler", model=m, scheduler="normal", steps=STEPS, denoise=1.0)
    high, low = h.call("SplitSigmas", sigmas=sigmas, step=split)
    (guider,) = h.call("SafetyDualGuider", model=m, positive=s.positive, negative=s.negative, safe_positive=s.safe,
                       cfg=7.0, safety_weight=w, context_threshold=tau,
                       **({"full_sigmas": sigmas} if full_sigmas else {}))
    (sampler,) = h.call("KSamplerSelect", sampler_name="euler")
    (noise,) = h.call("RandomNoise", noise_seed=7)
    (off,) = h.call("DisableNoise")
    a, _ = h.call("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=sampler, sigmas=high,
                  latent_image=h.empty_latent(64, 64, 1))
    b, _ = h.call("SamplerCustomAdvanced", noise=off, guider=guider, sampler=sampler, sigmas=low, latent_image=a)
    return b


def test_guider_on_split_sigmas_counts_the_whole_schedule_given_full_sigmas(s):
    m, log = recorded_model(s.model)
    with_full = guider_pair(s, 0.5, 0.5, 4, True, model=m)
    assert log.sizes() == [2] * 4 + [3] * 4
    log.reset()
    guider_pair(s, 0.5, 0.5, 4, False, model=m)
    assert log.sizes() == [2, 2, 3, 3] * 2   # unconnected: tau counts each stage's own steps
    host_err = max_diff(host_pair(s, 4, "euler"), s.ksampler(steps=STEPS, seed=7))
    assert max_diff(with_full, one_stage(s, "euler", 0.5, 0.5, "every_step")[0]) <= 2 * host_err
