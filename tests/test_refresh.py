"""`refresh`: the safety branch measured every r-th evaluation after the threshold, its last
correction reused in between. Pure schedule unit tests, then the call pattern and the reuse
on the real host and model."""
import pytest
import torch

from method_helpers import Setup, recorded_model, same
from pack_import import load_pure

rf = load_pure("refresh")


# -- pure --------------------------------------------------------------------------------

def test_schedule_counts_from_the_first_evaluation_after_the_threshold():
    assert [rf.refresh_due(i, 1) for i in range(4)] == [True] * 4
    assert [rf.refresh_due(i, 3) for i in range(7)] == [True, False, False, True, False, False, True]
    assert [rf.refreshes(n, 2) for n in (0, 1, 2, 3, 16)] == [0, 1, 1, 2, 8]
    assert rf.refreshes(16, 3) == 6


def test_cost_ratio_is_the_issue_floor():
    assert rf.cost_ratio(20, 0, 1, 2) == 1.5 and rf.cost_ratio(20, 0, 1, 1) == 2.0
    assert rf.cost_ratio(20, 0, 2, 2) == 1.25 and rf.cost_ratio(20, 0, 2, 1) == 1.5
    assert rf.cost_ratio(20, 0, 4, 1) == 1.25
    assert rf.cost_ratio(20, 4, 2, 2) == (40 + 8) / 40


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", None, True, float("nan")])
def test_refresh_must_be_an_integer_from_one(bad):
    with pytest.raises(ValueError, match="refresh must be an integer >= 1"):
        rf.check_refresh(bad)
    assert rf.check_refresh(2.0) == 2 and rf.check_refresh(1) == 1


def test_cache_reuses_the_last_correction_and_keeps_nothing_at_refresh_one():
    user, safe = torch.tensor([1.0, 2.0]), torch.tensor([1.5, 1.0])
    c = rf.CorrectionCache(2)
    assert c.next_is_refresh()
    c.store(user, safe)
    assert not c.next_is_refresh()
    assert torch.equal(c.safe_estimate(torch.tensor([3.0, 3.0])), torch.tensor([3.5, 2.0]))
    assert c.next_is_refresh()
    exact = rf.CorrectionCache(1)
    for _ in range(3):
        assert exact.next_is_refresh()
        exact.store(user, safe)
        assert exact.correction is None


# -- the real host -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def s(host, tiny):
    return Setup(host, tiny)


def test_call_pattern_n20_k4_refresh2(s):
    m, log = recorded_model(s.model)
    s.dual(0.5, 0.2, "every_step", model=m, steps=20, refresh=2)   # k = round(0.2 * 20) = 4
    assert log.sizes() == [2] * 4 + [3, 2] * 8                     # 3 conds on steps 4, 6, ..., 18
    assert all(sorted(c[1]) == [0, 1] for c in log.calls[5::2])    # reuse: the user prompt and the negative
    assert sorted(log.calls[4][1]) == [0, 1, 2]                    # refresh: user, negative, safe in one batch
    log.reset()
    s.dual(0.5, 0.2, "every_step", model=m, steps=20, cfg=1.0, refresh=2)
    assert log.sizes() == [1] * 4 + [2, 1] * 8                     # cfg 1: the host drops the negative
    log.reset()
    s.dual(0.5, 0.2, "every_step", model=m, steps=20, refresh=3)
    assert log.sizes() == [2] * 4 + [3, 2, 2] * 5 + [3]


@pytest.mark.parametrize("sampler", ["heun", "dpmpp_2s_ancestral"])
def test_two_evaluation_samplers_count_evaluations(s, sampler):
    # 6 steps, 2 evaluations each but the last (it lands on sigma 0: one evaluation) = 11.
    m, log = recorded_model(s.model)
    s.dual(0.5, 0.0, "every_step", model=m, steps=6, sampler_name=sampler)
    assert log.sizes() == [3] * 11
    exact_sigmas = [c[0] for c in log.calls]
    log.reset()
    s.dual(0.5, 0.0, "every_step", model=m, steps=6, sampler_name=sampler, refresh=2)
    assert log.sizes() == [3, 2] * 5 + [3]
    # refresh 2 measures the first evaluation of every step, at the step's own noise level.
    sigmas = [c[0] for c in log.calls]
    assert sigmas[:2] == exact_sigmas[:2]
    (ks_sigmas,) = s.host.call("BasicScheduler", model=s.model, scheduler="normal", steps=6, denoise=1.0)
    assert sigmas[0:10:2] == pytest.approx([float(x) for x in ks_sigmas[:5]], rel=1e-6)


def test_refresh_one_is_the_default_and_one_post_threshold_step_is_exact(s):
    assert same(s.dual(0.5, 0.3, "every_step", steps=8, refresh=1)[0], s.dual(0.5, 0.3, "every_step", steps=8)[0])
    # Only one evaluation after the threshold (k = 4 of 5): any refresh measures it, bit for bit.
    one = s.dual(0.5, 0.8, "every_step", steps=5)
    for a, b in zip(one[:3], s.dual(0.5, 0.8, "every_step", steps=5, refresh=3)[:3]):   # the latents
        assert same(a, b)


def test_trajectory_leaves_the_exact_one_only_after_the_first_reuse(s):
    m, log = recorded_model(s.model)
    s.dual(0.6, 0.3, "every_step", model=m, steps=10, sampler_name="euler_ancestral")  # k = 3
    exact = [c[2] for c in log.calls]
    log.reset()
    approx = s.dual(0.6, 0.3, "every_step", model=m, steps=10, sampler_name="euler_ancestral", refresh=2)
    ours = [c[2] for c in log.calls]
    for i in range(5):  # x_0..x_4: the leading steps and the refreshed step 3 are the exact method's
        assert torch.equal(ours[i][:1], exact[i][:1]), i  # row 0 of the batched input: x_i itself
    assert not torch.equal(ours[5][:1], exact[5][:1])  # step 4 reused the correction: the trajectories part
    # The weight 0 and weight 1 paths evaluate no merged branch: refresh changes nothing there.
    assert same(s.dual(0.0, 0.3, "every_step", steps=6, refresh=3)[0], s.ksampler(steps=6))
    assert same(s.dual(1.0, 0.0, "every_step", steps=6, refresh=3)[0], s.ksampler(positive=s.safe, steps=6))
    assert not same(approx[0], s.dual(0.6, 0.3, "every_step", steps=10, sampler_name="euler_ancestral")[0])


def run_guider(s, model, refresh, steps=8, cfg=6.0, w=0.4, tau=0.25, sampler="euler_ancestral", seed=11):
    h = s.host
    (guider,) = h.call("SafetyDualGuider", model=model, positive=s.positive, negative=s.negative,
                       safe_positive=s.safe, cfg=cfg, safety_weight=w, context_threshold=tau, refresh=refresh)
    (noise,) = h.call("RandomNoise", noise_seed=seed)
    (smp,) = h.call("KSamplerSelect", sampler_name=sampler)
    (sigmas,) = h.call("BasicScheduler", model=s.model, scheduler="karras", steps=steps, denoise=1.0)
    run = lambda: h.call("SamplerCustomAdvanced", noise=noise, guider=guider, sampler=smp, sigmas=sigmas,
                         latent_image=h.empty_latent(64, 64, 2))[0]
    return guider, run


def test_guider_node_equals_the_sampler_node_and_restarts_its_count_per_run(s):
    guider, run = run_guider(s, s.model, refresh=3)
    first, second = run(), run()
    assert same(first, second)  # a reused guider starts every run at a refresh
    ours = s.dual(0.4, 0.25, "every_step", seed=11, steps=8, cfg=6.0, sampler_name="euler_ancestral",
                  scheduler="karras", latent_image=s.host.empty_latent(64, 64, 2), refresh=3)
    assert same(first, ours[0])


def test_reused_steps_add_the_last_measured_correction(s):
    """At every evaluation a post-cfg hook (a host feature) recomputes the true user and safety
    estimates: refreshed evaluations merge them, reused ones merge the fresh user estimate with
    user + the correction of the last refreshed evaluation, which is not the fresh safety one."""
    import comfy.samplers
    w, seen = 0.4, []
    model = s.model.clone()
    holder = {}

    def hook(args):
        u, sf = comfy.samplers.calc_cond_batch(args["model"], [args["cond"], holder["guider"].conds["safe_positive"]],
                                               args["input"], args["sigma"], args["model_options"])
        seen.append((u, sf, args["cond_denoised"]))
        return args["denoised"]

    model.set_model_sampler_post_cfg_function(hook)
    holder["guider"], run = run_guider(s, model, refresh=3, steps=10, w=w, tau=0.2)  # k = 2
    run()
    assert len(seen) == 10
    seen = seen[2:]  # the evaluations after the threshold
    err = lambda a, b: float((a - b).abs().max())
    for i, (u, sf, merged) in enumerate(seen):
        j = i - i % 3  # the last refreshed evaluation: 0, 3, 6 after the threshold
        uj, sj, _ = seen[j]
        reused, fresh = err(merged, (1 - w) * u + w * (u + (sj - uj))), err(merged, (1 - w) * u + w * sf)
        scale = float(merged.abs().max())
        assert reused <= 1e-5 * scale, (i, reused)      # batch-size rounding at most (0.0 here on CPU)
        if i % 3:
            assert fresh > max(10 * reused, 1e-6 * scale), (i, fresh)  # really reused, not measured
    assert err(seen[1][2], (1 - w) * seen[1][0] + w * seen[1][1]) > 1e-3 * float(seen[1][2].abs().max())


def test_bad_refresh_is_refused_by_name(s):
    with pytest.raises(ValueError, match="refresh must be an integer >= 1"):
        s.dual(0.5, 0.2, "every_step", refresh=0)
    with pytest.raises(ValueError, match="refresh 2 applies to merge every_step only"):
        s.dual(0.5, 0.2, "at_end", refresh=2)
    with pytest.raises(ValueError, match="refresh must be an integer >= 1"):
        s.host.call("SafetyDualGuider", model=s.model, positive=s.positive, negative=s.negative,
                    safe_positive=s.safe, cfg=6.0, safety_weight=0.4, context_threshold=0.25, refresh=1.5)
    assert same(s.dual(0.5, 0.2, "at_end", refresh=1)[0], s.dual(0.5, 0.2, "at_end")[0])
