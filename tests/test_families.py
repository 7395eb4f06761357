"""METHOD.md's invariants on every model family the host loads, bit for bit (torch.equal),
plus model calls per step, batches, video noise masks and the safe branch's model inputs.

Tiny seeded models of each family (scripts/build_family_checkpoints.py) through the host's
UNETLoader; CONDITIONING built directly. Flux and Qwen-Image (~400 M parameters, fixed widths)
are marked `large`: `make test` runs them, `-m "not large"` skips them.
"""
import pytest
import torch

from family_helpers import LARGE, SPECS, Family, logged, rows_of

FAMILIES = [pytest.param(n, marks=pytest.mark.large) if n in LARGE else n for n in SPECS]
VIDEO = [n for n in SPECS if SPECS[n]["latent"] in ("video16", "video48", "ltxv")]
MERGES = ["every_step", "at_end"]


@pytest.fixture(scope="module", params=FAMILIES)
def fam(request, host):
    return Family(host, request.param)


def same(a, b):
    return torch.equal(a["samples"], b["samples"])


@pytest.mark.parametrize("merge", MERGES)
def test_weight_zero_is_exactly_ksampler_with_no_extra_call(fam, merge):
    m, log = logged(fam.model)
    ref = fam.ksampler(model=m)
    ref_sizes = log.sizes()
    log.reset()
    out = fam.dual(0.0, 0.5, merge, model=m)
    assert same(out[0], ref)
    assert log.sizes() == ref_sizes
    assert bool(torch.isfinite(ref["samples"]).all()) and bool(ref["samples"].abs().sum() > 0)


@pytest.mark.parametrize("merge", MERGES)
def test_weight_one_threshold_zero_is_ksampler_on_the_safe_branch(fam, merge):
    # The safe branch is the positive with its text swapped: the reference is the host's
    # KSampler on the safety text decorated the way the positive is (guidance, start image).
    ref = fam.ksampler(positive=fam.safe_reference)
    out = fam.dual(1.0, 0.0, merge)
    assert same(out[0], ref)
    assert not same(out[0], fam.ksampler())


def test_at_end_is_the_weighted_sum_of_its_branches_and_user_is_ksampler(fam):
    w = 0.3
    latent, user, safe = fam.dual(w, 0.5, "at_end")[:3]
    assert same(user, fam.ksampler())
    assert torch.equal(latent["samples"], (1 - w) * user["samples"] + w * safe["samples"])
    assert not torch.equal(user["samples"], safe["samples"])


def test_first_k_steps_follow_the_user_stream_and_calls_per_step(fam):
    steps = 4   # tau 0.5: k = 2
    m, log = logged(fam.model)
    fam.ksampler(model=m, steps=steps)
    user_inputs = [c[2] for c in log.calls]
    user_calls = log.per_sigma()
    log.reset()
    fam.dual(0.6, 0.5, "every_step", model=m, steps=steps)
    dual_calls = log.per_sigma()
    inputs = [c[2] for c in log.calls]
    # The first k steps are the user stream's calls exactly; x_k is the user stream's.
    k_calls = sum(user_calls[:2])
    for i in range(k_calls + 1):
        assert torch.equal(inputs[i][:1], user_inputs[i][:1]), i
    assert dual_calls[:2] == user_calls[:2]
    # Model calls per step (measured, see the README's family table): the user stream's, then
    # the dual steps'. Texts of different lengths batch only where the model's text cond allows.
    assert (user_calls[0], dual_calls[-1]) == SPECS[fam.name]["calls"], (fam.name, user_calls, dual_calls)
    assert dual_calls == user_calls[:2] + [dual_calls[-1]] * 2


def test_texts_of_equal_length_run_in_one_call_per_step(fam):
    # Short prompts reach the same token count on families whose tokenizer pads to a minimum
    # (Flux T5 256, Wan umT5 512, LTXV 128, SD3 77 + 77, CLIP 77): then user, negative and
    # safety context run in one batched call per step, before and after the threshold.
    length = fam.raw_positive[0][0].shape[1]
    m, log = logged(fam.model)
    safe = fam.text(length, seed=2)
    negative = fam.text(length, seed=3)
    fam.host.call("DualLatentKSampler", positive=fam.positive, safe_positive=safe, safety_weight=0.5,
                  context_threshold=0.5, merge="every_step", **fam.common(model=m, negative=negative, cfg=3.0))
    assert log.per_sigma() == [1, 1, 1, 1]
    assert log.sizes() == [2, 2, 3, 3]


@pytest.mark.parametrize("merge", MERGES)
def test_batch_of_two(fam, merge):
    latent = fam.empty_latent(batch_size=2)
    assert same(fam.dual(0.0, 0.5, merge, latent_image=latent)[0], fam.ksampler(latent_image=latent))
    out, user, safe = fam.dual(0.5, 0.5, merge, latent_image=latent)[:3]
    assert out["samples"].shape[0] == 2
    assert bool(torch.isfinite(out["samples"]).all())
    if merge == "at_end":
        assert same(user, fam.ksampler(latent_image=latent))
        assert torch.equal(out["samples"], 0.5 * user["samples"] + 0.5 * safe["samples"])


def test_safe_branch_receives_the_positives_model_inputs(fam):
    key = "guidance" if "guidance" in fam.spec else "c_concat" if fam.spec.get("start_image") else None
    if key is None:
        pytest.skip(f"{fam.name}: the positive carries no model input besides its text here")
    m, log = logged(fam.model)
    fam.dual(0.5, 0.0, "every_step", model=m, cfg=2.0)
    user = [rows_of(c, 0, key) for c in log.calls if 0 in c[1]]
    safe = [rows_of(c, 2, key) for c in log.calls if 2 in c[1]]
    negative = [rows_of(c, 1, key) for c in log.calls if 1 in c[1]]
    assert len(user) == len(safe) == 4
    for u, s in zip(user, safe):
        assert torch.equal(u, s)
    if key == "guidance":
        assert float(safe[0][0]) == fam.spec["guidance"]
    else:   # the start image, not the all-zero image the model builds without one
        assert bool(safe[0][:, 4:].abs().sum() > 0) and not torch.equal(safe[0], negative[0])


@pytest.mark.parametrize("merge", MERGES)
def test_video_latent_with_a_per_frame_noise_mask(fam, merge):
    if fam.name not in VIDEO:
        pytest.skip("image family")
    samples = fam.empty_latent()["samples"]
    source = torch.randn(samples.shape, generator=torch.Generator().manual_seed(9))
    mask = torch.ones(1, 1, *samples.shape[2:])
    mask[:, :, 0] = 0.0   # keep the first frame, generate the others
    latent = {"samples": source, "noise_mask": mask}
    ref = fam.ksampler(latent_image=latent)
    assert same(fam.dual(0.0, 0.5, merge, latent_image=latent)[0], ref)
    out, user, safe = fam.dual(0.5, 0.5, merge, latent_image=latent)[:3]
    assert torch.allclose(out["samples"][:, :, 0], source[:, :, 0], atol=1e-5)   # the kept frame
    assert not torch.equal(out["samples"][:, :, 1:], ref["samples"][:, :, 1:])
    if merge == "at_end":
        assert same(user, ref)
        assert torch.equal(out["samples"], 0.5 * user["samples"] + 0.5 * safe["samples"])
