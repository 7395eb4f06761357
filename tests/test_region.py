"""Plain unit tests of the region math (nodes/region.py, no host)."""
import pytest
import torch
import torch.nn.functional as F

from pack_import import load_pure

rg = load_pure("region")
lm = load_pure("latent_math")


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def resize(mask, shape):
    """A stand-in for the host's comfy.utils.reshape_mask (the host tests use the real one)."""
    mode = "bilinear" if len(shape) == 4 else "trilinear"
    return F.interpolate(mask, size=tuple(shape[2:]), mode=mode)


# -- the per-pixel merge ---------------------------------------------------------------

def test_merge_is_a_outside_and_the_global_sum_inside_bit_for_bit():
    a, b = rand(2, 4, 8, 8, seed=1), rand(2, 4, 8, 8, seed=2)
    m = torch.zeros(2, 1, 8, 8)
    m[0, :, 2:5, 3:7] = 1.0
    m[1, :, :, :4] = 1.0
    for w in (0.3, 0.5, 0.77, 1.0):
        out = rg.region_merge(a, b, w, m)
        inside = m.expand_as(a) == 1
        assert torch.equal(out[~inside], a[~inside])
        assert torch.equal(out[inside], lm.weighted_merge(a, b, w)[inside])


def test_merge_with_all_ones_is_the_global_merge_and_soft_masks_interpolate():
    a, b = rand(1, 4, 8, 8, seed=3), rand(1, 4, 8, 8, seed=4)
    assert torch.equal(rg.region_merge(a, b, 0.3, torch.ones(1, 1, 8, 8)), lm.weighted_merge(a, b, 0.3))
    soft = torch.full((1, 1, 8, 8), 0.5)
    assert torch.allclose(rg.region_merge(a, b, 0.6, soft), 0.7 * a + 0.3 * b, atol=1e-6)
    assert torch.equal(rg.region_merge(a, b, 0.0, soft), a)


def test_merge_broadcasts_over_video_frames_and_refuses_bad_weights():
    a, b = rand(1, 4, 3, 8, 8, seed=5), rand(1, 4, 3, 8, 8, seed=6)
    m = torch.zeros(1, 1, 3, 8, 8)
    m[:, :, 1] = 1.0
    out = rg.region_merge(a, b, 0.5, m)
    assert torch.equal(out[:, :, 0], a[:, :, 0]) and torch.equal(out[:, :, 1], (0.5 * a + 0.5 * b)[:, :, 1])
    with pytest.raises(ValueError, match="safety_weight"):
        rg.region_merge(a, b, 1.5, m)


# -- fitting a pixel-space mask to the latent ----------------------------------------

def test_fit_mask_per_item_and_broadcast():
    mask = torch.zeros(2, 64, 64)
    mask[0, :32] = 1.0
    fitted = rg.fit_mask(mask, (2, 4, 8, 8), resize)
    assert fitted.shape == (2, 1, 8, 8)
    assert torch.equal(fitted[0, 0, :4], torch.ones(4, 8)) and torch.equal(fitted[0, 0, 4:], torch.zeros(4, 8))
    assert torch.equal(fitted[1], torch.zeros(1, 8, 8))
    one = rg.fit_mask(mask[:1], (3, 4, 8, 8), resize)
    assert one.shape == (3, 1, 8, 8) and torch.equal(one[2], fitted[0])
    assert rg.fit_mask(torch.ones(64, 64), (1, 4, 8, 8), resize).shape == (1, 1, 8, 8)   # [H, W]
    assert rg.fit_mask(torch.ones(1, 1, 64, 64), (1, 4, 8, 8), resize).shape == (1, 1, 8, 8)


def test_fit_mask_video_frames_per_item_or_broadcast():
    frames = torch.zeros(4, 64, 64)
    frames[2:] = 1.0
    fitted = rg.fit_mask(frames, (2, 16, 3, 8, 8), resize)   # 2 frames per video
    assert fitted.shape == (2, 1, 3, 8, 8)
    assert torch.equal(fitted[0], torch.zeros(1, 3, 8, 8)) and torch.equal(fitted[1], torch.ones(1, 3, 8, 8))
    single = rg.fit_mask(frames[3:], (2, 16, 3, 8, 8), resize)
    assert single.shape == (2, 1, 3, 8, 8) and bool((single == 1).all())


@pytest.mark.parametrize("mask,shape,match", [
    (torch.ones(3, 64, 64), (2, 4, 8, 8), "region has 3 masks but the latent batch has 2"),
    (torch.ones(1, 64, 96), (1, 4, 8, 8), "region is 96x64 .* but the latent is 8x8"),
    (torch.ones(3, 64, 64), (2, 4, 5, 8, 8), "region has 3 frames"),
    (torch.ones(1, 64, 64), (1, 4, 8), "region needs an image or video latent"),
    (torch.full((1, 8, 8), 1.5), (1, 4, 8, 8), r"region must hold finite values in \[0, 1\]"),
    (torch.full((1, 8, 8), float("nan")), (1, 4, 8, 8), "region must hold finite values"),
    (torch.ones(2, 2, 8, 8), (1, 4, 8, 8), "region must be a MASK of shape"),
    (torch.ones(0, 8, 8), (1, 4, 8, 8), "region must be a MASK of shape"),
    ("white", (1, 4, 8, 8), "region must be a MASK tensor"),
])
def test_masks_that_cannot_map_name_region(mask, shape, match):
    with pytest.raises(ValueError, match=match):
        rg.fit_mask(mask, shape, resize)


def test_sizes_off_by_less_than_a_latent_pixel_are_accepted():
    assert rg.fit_mask(torch.ones(1, 513, 512), (1, 4, 64, 64), resize).shape == (1, 1, 64, 64)
    assert rg.fit_mask(torch.ones(1, 4, 4), (1, 4, 64, 64), resize).shape == (1, 1, 64, 64)


@pytest.mark.parametrize("mode,region,match", [
    ("none", torch.ones(1, 8, 8), "region is connected but region_mode is 'none'"),
    ("auto", torch.ones(1, 8, 8), "region is connected but region_mode is 'auto'"),
    ("mask", None, "region_mode is 'mask' but no region is connected"),
    ("everywhere", None, "region_mode must be one of none, mask, auto"),
])
def test_mode_and_connection_must_agree(mode, region, match):
    with pytest.raises(ValueError, match=match):
        rg.check_region_settings(mode, region)


def test_resolve_knows_empty_and_full_regions_before_sampling():
    shape = (2, 4, 8, 8)
    assert rg.resolve(None, shape) == (True, None)
    assert rg.resolve(rg.FixedRegion(torch.zeros(1, 64, 64), resize), shape) == (False, None)
    assert rg.resolve(rg.FixedRegion(torch.ones(2, 64, 64), resize), shape) == (True, None)
    half = torch.zeros(1, 64, 64)
    half[:, :32] = 1
    active, m = rg.resolve(rg.FixedRegion(half, resize), shape)
    assert active and m.shape == (2, 1, 8, 8)
    auto = rg.AutoRegion(0.4)
    assert rg.resolve(auto, shape) == (True, auto)
    assert rg.resolve(rg.AutoRegion(1.0), shape) == (False, None)   # nothing can be above 1


# -- the auto region -----------------------------------------------------------------

def test_change_map_is_normalised_per_image():
    user = torch.zeros(2, 4, 16, 16)
    safe = user.clone()
    safe[0, :, 4:8, 4:8] = 5.0
    safe[1, :, 10:14, 2:6] = 0.01   # a tiny change is as strong as a big one, per image
    m = rg.change_map(user, safe)   # 16 latent pixels: no smoothing
    assert m.shape == (2, 1, 16, 16)
    assert torch.equal(m[0], m[1].roll((-6, 2), (1, 2)))
    assert torch.equal(m[0, 0] == 1, (safe[0, 0] > 0)) and float(m[0].sum()) == 16
    assert torch.equal(rg.change_map(user, user), torch.zeros(2, 1, 16, 16))


def test_change_map_smooths_in_proportion_to_the_latent_and_keeps_small_objects():
    assert [rg.smooth_radius((1, 4, n, n)) for n in (8, 31, 64, 128)] == [0, 0, 2, 4]
    user = torch.zeros(1, 4, 64, 64)
    safe = user.clone()
    safe[..., 30, 40] = 1.0   # one latent pixel
    m = rg.change_map(user, safe)   # radius 2: a 5x5 box, normalised after smoothing
    assert float(m.max()) == 1.0 and int((m == 1).sum()) == 25 and float(m[..., 30, 37]) == 0.0
    block = user.clone()
    block[..., 4:8, 4:8] = 1.0
    m = rg.change_map(user, block, radius=1)
    assert float(m[0, 0, 6, 6]) == 1.0 and float(m[0, 0, 3, 5]) == pytest.approx(1 / 3)   # the box's edge


def test_auto_region_thresholds_dilates_and_only_grows():
    user = torch.zeros(1, 4, 16, 16)
    first = user.clone()
    first[..., 4:8, 4:8] = 1.0
    auto = rg.AutoRegion(0.5)
    m1 = auto.update(user, first).clone()
    core = rg.change_map(user, first) > 0.5
    assert bool((m1[core] == 1).all()) and int(m1.sum()) > int(core.sum())   # grown by one latent pixel
    assert set(m1.unique().tolist()) <= {0.0, 1.0}
    second = user.clone()
    second[..., 10:14, 10:14] = 1.0
    m2 = auto.update(user, second)
    assert bool((m2 >= m1).all())   # the first object stays in the region
    auto.reset()
    assert auto.mask is None and torch.equal(auto.final((1, 4, 16, 16)), torch.zeros(1, 1, 16, 16))


def test_auto_region_on_video_latents_and_thresholds():
    user, safe = torch.zeros(1, 4, 3, 8, 8), torch.zeros(1, 4, 3, 8, 8)
    safe[:, :, 1, 2:4, 2:4] = 1.0
    m = rg.AutoRegion(0.3).update(user, safe)
    assert m.shape == (1, 1, 3, 8, 8)
    assert float(m[:, :, 1].sum()) > 0 and float(m[:, :, 0].sum()) == 0.0   # per frame, no temporal smear
    assert float(rg.AutoRegion(0.0).update(user, safe).mean()) < 1.0        # zero change never joins
    assert float(rg.AutoRegion(1.0).update(user, safe).sum()) == 0.0         # nothing is above 1
    with pytest.raises(ValueError, match="region_threshold"):
        rg.AutoRegion(1.2)


def test_to_pixels_blocks_and_frames():
    m = torch.zeros(2, 1, 2, 3)
    m[1, 0, 1, 2] = 1.0
    px = rg.to_pixels(m, 8)
    assert px.shape == (2, 16, 24) and float(px[1, 8:, 16:].min()) == 1.0 and float(px.sum()) == 64
    assert rg.to_pixels(torch.ones(2, 1, 3, 4, 4), 8).shape == (6, 32, 32)
