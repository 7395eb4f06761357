"""Where the safety stream may act: region masks and the per-pixel merge (pure torch).

A region is a mask m over the latent, in [0, 1] (soft masks allowed). With safety weight w
the merge becomes, per latent pixel,
    (1 - w m) a + (w m) b,
which is `a` bit for bit where m = 0 and the global weighted sum (1 - w) a + w b bit for bit
where m = 1 (the per-pixel coefficients are rounded to the latent's dtype exactly as the
scalar weight is in latent_math.weighted_merge).

Nothing here imports the host: resizing a pixel-space mask to the latent is done by the
`resize(mask, shape)` function the caller passes in (the host's own comfy.utils.reshape_mask).
"""
import torch
import torch.nn.functional as F

from .latent_math import check_unit_interval, choice_error

REGION_MODES = ("none", "mask", "auto")
SMOOTH_SHARE = 32  # auto: the box filter's radius is the latent's shorter side / this
DILATE = 1        # auto: the detected region grows by this many latent pixels


def check_region_settings(region_mode, region):
    """The mode, and whether a region mask is connected, must agree (errors name `region`)."""
    err = choice_error("region_mode", region_mode, REGION_MODES)
    if err:
        raise ValueError(err)
    if region is not None and region_mode != "mask":
        raise ValueError(f"region is connected but region_mode is '{region_mode}', which does not use it: "
                         "set region_mode to 'mask' to protect only that region, or disconnect region")
    if region is None and region_mode == "mask":
        raise ValueError("region_mode is 'mask' but no region is connected: connect a MASK to region "
                         "(white = where the safety stream may act)")


def check_mask(mask):
    """A MASK tensor ([H, W], [B, H, W] or [B, 1, H, W]) of finite values in [0, 1] -> [B, H, W]."""
    if not torch.is_tensor(mask):
        raise ValueError(f"region must be a MASK tensor, got {type(mask).__name__}")
    if mask.ndim == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3 or mask.numel() == 0:
        raise ValueError(f"region must be a MASK of shape [batch, height, width], got {tuple(mask.shape)}")
    mask = mask.float()
    if not bool(torch.isfinite(mask).all()) or float(mask.min()) < 0.0 or float(mask.max()) > 1.0:
        raise ValueError("region must hold finite values in [0, 1] (0 = keep your image, 1 = safety may act)")
    return mask


def check_aspect(mask_hw, latent_hw):
    """The mask must cover the latent's picture: the same aspect ratio within one latent pixel."""
    (H, W), (h, w) = mask_hw, latent_hw
    if abs(W * h - w * H) > max(H, W):
        raise ValueError(f"region is {W}x{H} (width x height) but the latent is {w}x{h} latent pixels, "
                         "a different aspect ratio: use a mask of the image's size")


def fit_mask(mask, latent_shape, resize):
    """The region for a latent of `latent_shape` ([B, C, h, w] or video [B, C, T, h, w]):
    returns [B, 1, h, w] (or [B, 1, T, h, w]) in [0, 1], float32.

    Image latents: a mask of batch 1 applies to every item; otherwise one mask per item.
    Video latents: the mask's images are frames; 1 frame applies to every frame and item,
    otherwise the frames are split evenly between the items and resampled over time to the
    latent's frames (by `resize`, the host's helper)."""
    mask = check_mask(mask)
    b, n = int(latent_shape[0]), int(mask.shape[0])
    if len(latent_shape) not in (4, 5):
        raise ValueError(f"region needs an image or video latent, got a latent of shape {tuple(latent_shape)}")
    check_aspect(tuple(mask.shape[-2:]), tuple(latent_shape[-2:]))
    if len(latent_shape) == 4:
        if n not in (1, b):
            raise ValueError(f"region has {n} masks but the latent batch has {b} items: give 1 mask "
                             f"(for all) or {b} (one per item)")
        out = resize(mask.unsqueeze(1), (n, 1) + tuple(latent_shape[2:]))
    else:
        if n != 1 and n % b != 0:
            raise ValueError(f"region has {n} frames, which cannot be split between the {b} videos of the "
                             "latent batch: give 1 mask (for all frames) or the same number of frames per video")
        chunks = mask.chunk(b) if n > 1 else (mask,)
        out = torch.cat([resize(c.unsqueeze(0).unsqueeze(0), (1, 1) + tuple(latent_shape[2:])) for c in chunks])
    out = out.float().clamp(0.0, 1.0)  # interpolation may overshoot by rounding
    return out.expand((b,) + tuple(out.shape[1:])).contiguous() if out.shape[0] == 1 else out


def region_merge(a, b, weight, mask):
    """(1 - weight * mask) * a + (weight * mask) * b per latent pixel; mask broadcasts over channels."""
    w = check_unit_interval("safety_weight", weight)
    wm = w * mask.to(device=a.device, dtype=torch.float64)
    keep, take = (1.0 - wm).to(a.dtype), wm.to(a.dtype)
    if a.dtype != b.dtype or a.device != b.device:
        b = b.to(device=a.device, dtype=a.dtype)
    return keep * a + take * b


def mask_is(mask, value):
    return bool((mask == value).all())


def _pool(x, fn, size):
    """A spatial pooling of [B, 1, h, w] or [B, 1, T, h, w] with stride 1 and same size."""
    pad = size // 2
    if x.ndim == 4:
        return fn(F.pad(x, (pad,) * 4, mode="replicate"), size, stride=1)
    return fn(F.pad(x, (pad,) * 4 + (0, 0), mode="replicate"), (1, size, size), stride=1)


def smooth_radius(shape):
    """The box filter's radius for a latent of `shape`: 1/32 of its shorter side (0 below 32:
    small latents keep their detail), so the smoothing covers the same share of any image."""
    return min(int(shape[-2]), int(shape[-1])) // SMOOTH_SHARE


def change_map(user, safe, radius=None):
    """Where the safety context changes the prediction: |safe - user| averaged over channels,
    box-smoothed (spatially, per frame), divided by its maximum per image (per item; per video
    over all its frames), so the strongest change is 1 however small the changed object is."""
    d = (safe.float() - user.float()).abs().mean(dim=1, keepdim=True)
    r = smooth_radius(d.shape) if radius is None else int(radius)
    if r > 0:
        d = _pool(d, F.avg_pool2d if d.ndim == 4 else F.avg_pool3d, 2 * r + 1)
    peak = d.flatten(1).amax(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
    return (d / peak.view((-1,) + (1,) * (d.ndim - 1))).clamp(0.0, 1.0)


class AutoRegion:
    """The `auto` region, built from the two branches' predictions, step by step.

    Each update adds the change map to a running mean over the steps seen so far; the pixels
    whose mean is above the threshold, grown by DILATE latent pixels, join the region. The
    region only grows, so it does not flicker from step to step. No model call is made."""

    def __init__(self, threshold):
        self.threshold = check_unit_interval("region_threshold", threshold)
        self.reset()

    def reset(self):
        """Forget the previous sampling run."""
        self.total, self.count, self.mask = None, 0, None

    def update(self, user, safe):
        m = change_map(user, safe)
        self.total = m if self.total is None else self.total + m
        self.count += 1
        hit = (self.total / self.count > self.threshold).float()
        if DILATE:
            hit = _pool(hit, F.max_pool2d if hit.ndim == 4 else F.max_pool3d, 2 * DILATE + 1)
        self.mask = hit if self.mask is None else torch.maximum(self.mask, hit)
        return self.mask

    def final(self, shape):
        """The region so far as [B, 1, ...] for a latent of `shape` (zeros if never updated)."""
        if self.mask is None:
            return torch.zeros((shape[0], 1) + tuple(shape[2:]))
        return self.mask


class FixedRegion:
    """A given MASK, fitted (by `resize`, the host's helper) once per latent shape."""

    def __init__(self, mask, resize):
        self.mask = check_mask(mask)
        self.resize = resize
        self.fitted = {}

    def at(self, shape):
        key = tuple(int(s) for s in shape)
        if key not in self.fitted:
            self.fitted[key] = fit_mask(self.mask, key, self.resize)
        return self.fitted[key]

    def reset(self):
        pass


def resolve(region, shape):
    """What a region means for a latent of `shape`, known before any model call:
    (False, None): nowhere, so the plain sampler runs; (True, None): the whole latent, so the
    global method runs; (True, mask or AutoRegion): the per-pixel merge."""
    if region is None:
        return True, None
    if isinstance(region, AutoRegion):
        return region.threshold < 1.0, (region if region.threshold < 1.0 else None)
    m = region.at(shape)
    if mask_is(m, 0.0):
        return False, None
    return True, (None if mask_is(m, 1.0) else m)


def to_pixels(mask, scale):
    """A latent-resolution region [B, 1, h, w] (or [B, 1, T, h, w]) as a pixel-space MASK:
    each latent pixel becomes a scale x scale block; video frames are listed item by item."""
    m = mask[:, 0].float()
    if m.ndim == 4:
        m = m.reshape((-1,) + tuple(m.shape[-2:]))
    return m.repeat_interleave(int(scale), dim=-2).repeat_interleave(int(scale), dim=-1)
