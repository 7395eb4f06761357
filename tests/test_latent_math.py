"""Plain unit tests of the pure latent arithmetic (no host)."""
import math

import pytest
import torch

from pack_import import load_pure

lm = load_pure("latent_math")


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_weight_zero_and_one_are_exact():
    a, b = rand(2, 4, 8, 8, seed=1), rand(2, 4, 8, 8, seed=2)
    assert torch.equal(lm.weighted_merge(a, b, 0.0), a)
    assert torch.equal(lm.weighted_merge(a, b, 1.0), b)


def test_interior_weight_is_the_documented_formula():
    a, b = rand(1, 4, 8, 8, seed=3), rand(1, 4, 8, 8, seed=4)
    for w in (0.25, 0.5, 0.73):
        assert torch.equal(lm.weighted_merge(a, b, w), (1 - w) * a + w * b)
    mid = lm.weighted_merge(a, b, 0.5)
    assert not torch.equal(mid, a) and not torch.equal(mid, b)


def test_batch_of_one_broadcasts_both_ways():
    a, b = rand(1, 4, 8, 8, seed=5), rand(3, 4, 8, 8, seed=6)
    out = lm.weighted_merge(a, b, 0.5)
    assert out.shape == (3, 4, 8, 8)
    assert torch.equal(out[2], (0.5 * a + 0.5 * b)[2])
    assert lm.weighted_merge(b, a, 0.5).shape == (3, 4, 8, 8)


@pytest.mark.parametrize("shape_b", [(2, 4, 8, 16), (2, 16, 8, 8), (3, 4, 8, 8), (2, 4, 8)])
def test_mismatched_shapes_name_both(shape_b):
    a, b = torch.zeros(2, 4, 8, 8), torch.zeros(*shape_b)
    with pytest.raises(ValueError) as e:
        lm.weighted_merge(a, b, 0.5)
    assert "(2, 4, 8, 8)" in str(e.value) and str(tuple(shape_b)) in str(e.value)
    assert "latent_a" in str(e.value) and "latent_b" in str(e.value)


@pytest.mark.parametrize("w", [-0.01, 1.01, math.nan, math.inf, "x", None])
def test_out_of_range_weight_is_refused(w):
    with pytest.raises(ValueError, match="weight"):
        lm.weighted_merge(torch.zeros(1, 4, 2, 2), torch.zeros(1, 4, 2, 2), w)


def test_nan_is_refused_by_name():
    x = torch.zeros(1, 4, 2, 2)
    x[0, 1, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="latent_image holds 1 NaN"):
        lm.check_finite("latent_image", x)
    assert lm.check_finite("ok", torch.zeros(2)) is not None


def test_segment_sigmas_slices_like_the_hosts_ksampler_advanced():
    full = torch.tensor([14.6, 7.0, 3.0, 1.0, 0.5, 0.0])
    assert torch.equal(lm.segment_sigmas(full), full)
    assert torch.equal(lm.segment_sigmas(full, 0, 2), full[:3])                       # leftover noise kept
    assert torch.equal(lm.segment_sigmas(full, 0, 2, True), torch.tensor([14.6, 7.0, 0.0]))
    assert torch.equal(lm.segment_sigmas(full, 2, 10000), full[2:])
    assert lm.segment_sigmas(full, 5, 10000) is None                                  # nothing to run
    assert full[2] == 3.0                                                              # never modified
