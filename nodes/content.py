"""The content check's math (issue 23): when to look, what a detection decides, and the region
it gives (pure torch/stdlib; no host, no detector package).

At check steps after the threshold the user stream's clean-image estimate is decoded and handed
to a detector, which says per batch item: a score, a pixel mask of where unsafe content is, and
the classes it saw. An item fires at its first check with score >= the detector's threshold; its
safety stream then starts `go_back` steps earlier (never before tau) and acts inside the detected
mask, grown by `grow` latent pixels. An item that never fires keeps the user stream: KSampler's
result, bit for bit. With `confirm`, an item that fired acts only if the detector also fires on
the clean estimate of the user stream's last step (what KSampler would return): a look-alike
that fades before the end leaves the item as KSampler made it.
"""
import dataclasses
import math

import torch
import torch.nn.functional as F

from .latent_math import check_unit_interval, context_steps
from .region import change_map


def check_int(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class ContentCheck:
    """What a detector node hands to the samplers: the detector, the decoder the check uses
    (the model's VAE), and when and how a detection acts."""
    detector: object                # has .name and .detect(images [B, H, W, 3] in [0, 1]) -> [ItemResult]
    decoder: object                 # has .decode(latent) -> images [B, H, W, 3] (the host's VAE)
    score_threshold: float = 0.5    # an item fires at a check whose score is >= this
    check_start: float = 0.3        # checks begin at this fraction of the schedule (never before tau)
    check_every: int = 2            # then every n-th step
    go_back: int = 0                # the safety stream starts this many steps before the firing check
    grow: int = 1                   # the detected mask grows by this many latent pixels
    confirm: bool = False           # act only if the last step's estimate fires too

    def __post_init__(self):
        if not isinstance(self.confirm, bool):
            raise ValueError(f"confirm must be true or false, got {self.confirm!r}")
        if self.confirm and getattr(self.detector, "uses_branches", False):
            raise ValueError("confirm needs a detector that looks at the image; the branch-difference detector "
                             "compares the prompts' predictions, so set confirm to false")
        object.__setattr__(self, "score_threshold", check_unit_interval("score_threshold", self.score_threshold))
        object.__setattr__(self, "check_start", check_unit_interval("check_start", self.check_start))
        object.__setattr__(self, "check_every", check_int("check_every", self.check_every, 1, 10000))
        object.__setattr__(self, "go_back", check_int("go_back", self.go_back, 0, 10000))
        object.__setattr__(self, "grow", check_int("grow", self.grow, 0, 64))


@dataclasses.dataclass(frozen=True)
class ItemResult:
    """One image's detection: its score in [0, 1], a pixel mask [H, W] in [0, 1] (None: the
    detector gives no place, so the whole image) and the classes seen."""
    score: float
    mask: object = None
    classes: tuple = ()


def check_steps(steps, threshold, check):
    """The step indices (0-based, of the whole schedule of `steps`) at which the check runs:
    from max(k, ceil(check_start * steps)) on, every `check_every`-th step."""
    first = max(context_steps(threshold, steps), int(math.ceil(check.check_start * steps - 1e-9)))
    return list(range(first, int(steps), check.check_every))


@dataclasses.dataclass
class ItemDecision:
    fired_at: int = None            # the check step that fired, or None
    start: int = None               # the step the safety stream starts at
    score: float = 0.0              # the highest score seen
    classes: tuple = ()
    mask: object = None             # the firing check's pixel mask (None: whole image)
    checks: int = 0                 # how many checks looked at this item
    same_text: bool = False         # its safety text equals its prompt: nothing for safety to change
    confirmed: bool = None          # with confirm: whether the last step's estimate fired too

    @property
    def acts(self):
        """Whether the safety stream acts on this item."""
        return self.fired_at is not None and not self.same_text and self.confirmed is not False

    def report(self, item):
        if self.fired_at is None:
            return f"item {item}: nothing fired ({self.checks} checks, highest score {self.score:.2f})"
        seen = ", ".join(self.classes) or "unsafe content"
        if self.confirmed is False:
            return (f"item {item}: fired at step {self.fired_at + 1} (score {self.score:.2f}: {seen}), but the "
                    "last step's image does not show it, so it was left as it was")
        if self.same_text:
            return (f"item {item}: fired at step {self.fired_at + 1} (score {self.score:.2f}: {seen}), but its "
                    "safety text equals its prompt, so it was left as it was")
        return (f"item {item}: fired at step {self.fired_at + 1} (score {self.score:.2f}: {seen}); "
                f"safety from step {self.start + 1}")


def checked_score(result):
    """A detector result's score as a float, refused unless it lies in [0, 1]."""
    score = float(result.score)
    if not math.isfinite(score) or score < 0.0 or score > 1.0:
        raise ValueError(f"the detector returned the score {result.score!r}; scores must lie in [0, 1]")
    return score


def decide(decisions, step, results, check, threshold_step):
    """Fold one check's per-item results into the decisions (items that fired already keep
    their first firing)."""
    for d, r in zip(decisions, results):
        if d is None or d.fired_at is not None:
            continue
        d.checks += 1
        score = checked_score(r)
        if score >= check.score_threshold:
            d.fired_at, d.score, d.classes, d.mask = step, score, tuple(r.classes), r.mask
            d.start = max(threshold_step, step - check.go_back)
        else:
            d.score = max(d.score, score)
    return decisions


def confirm(decisions, results, check):
    """Fold the detector's say on the last step's estimates into the decisions that fired (one
    result per fired item, in order): an item stays acting if it fires there too, its mask then
    the union of both detections (None, the whole image, if either gives no place)."""
    fired = [d for d in decisions if d.fired_at is not None]
    if len(results) != len(fired):
        raise RuntimeError(f"the confirming check returned {len(results)} results for {len(fired)} items")
    for d, r in zip(fired, results):
        d.confirmed = checked_score(r) >= check.score_threshold
        if d.confirmed:
            if d.mask is None or r.mask is None:
                d.mask = None
            else:
                d.mask = torch.maximum(torch.as_tensor(d.mask).float(), torch.as_tensor(r.mask).float())
            d.classes = tuple(dict.fromkeys(tuple(d.classes) + tuple(r.classes)))
    return decisions


def boxes_to_mask(boxes, height, width):
    """[(x, y, w, h), ...] in pixels -> a [height, width] mask that is 1 inside any box."""
    mask = torch.zeros(int(height), int(width))
    for x, y, w, h in boxes:
        x0, y0 = max(0, int(math.floor(x))), max(0, int(math.floor(y)))
        x1, y1 = min(int(width), int(math.ceil(x + w))), min(int(height), int(math.ceil(y + h)))
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = 1.0
    return mask


def latent_mask(mask, latent_hw):
    """A pixel mask [H, W] (or None: the whole image) -> [1, 1, h, w] on the latent grid: a
    latent pixel is in the region if any of the pixels it covers is (adaptive max pooling)."""
    h, w = (int(s) for s in latent_hw)
    if mask is None:
        return torch.ones(1, 1, h, w)
    m = torch.as_tensor(mask).float()
    if m.ndim != 2:
        raise ValueError(f"the detector returned a mask of shape {tuple(m.shape)}; expected [height, width]")
    return F.adaptive_max_pool2d(m[None, None].clamp(0.0, 1.0), (h, w))


def grow_mask(mask, pixels):
    """Dilate a [B, 1, h, w] mask by `pixels` latent pixels (max pooling)."""
    if pixels <= 0:
        return mask
    return F.max_pool2d(F.pad(mask, (pixels,) * 4, mode="replicate"), 2 * pixels + 1, stride=1)


def item_masks(decisions, latent_shape, grow):
    """[B, 1, h, w] (video [B, 1, 1, h, w]: one mask for every frame of a clip): the grown mask of
    each item safety acts on, zeros for the others."""
    hw = tuple(latent_shape[-2:])
    rows = [grow_mask(latent_mask(d.mask, hw), grow) if d.acts else torch.zeros(1, 1, *hw)
            for d in decisions]
    masks = torch.cat(rows)
    return masks.view(masks.shape[0], 1, *([1] * (len(latent_shape) - 4)), *hw)


def clip_results(results, frames, score_threshold):
    """Per-frame results of `len(results) // frames` clips (clip by clip) -> one result per clip:
    a clip fires when any frame does. Its score is its highest frame's, its classes those of the
    frames that reach the threshold, its mask the union of their masks (None, the whole frame, if
    one of them gives no place), so the region covers everywhere the content appeared in the clip."""
    if frames < 1 or len(results) % frames:
        raise ValueError(f"{len(results)} frame results do not split into clips of {frames} frames")
    out = []
    for c in range(len(results) // frames):
        clip = results[c * frames:(c + 1) * frames]
        top = max(clip, key=lambda r: float(r.score))
        hits = [r for r in clip if float(r.score) >= score_threshold] or [top]
        classes = tuple(dict.fromkeys(k for r in hits for k in r.classes))
        if any(r.mask is None for r in hits):
            mask = None
        else:
            mask = torch.stack([torch.as_tensor(r.mask).float() for r in hits]).amax(0)
        out.append(ItemResult(float(top.score), mask, classes))
    return out


class ItemSchedule:
    """Per item, from which noise level on its safety stream acts, and where: the region of a
    content-checked run. `at(sigma)` is the mask of the items whose start sigma is reached."""

    def __init__(self, masks, start_sigmas):
        self.masks = masks                      # [B, 1, h, w]
        self.start_sigmas = start_sigmas        # per item: float, or None (never)

    def at(self, sigma):
        s = float(sigma)
        on = [t is not None and s <= t * (1.0 + 1e-5) for t in self.start_sigmas]
        if not any(on):
            return None
        gate = torch.tensor(on, dtype=self.masks.dtype).view(-1, *([1] * (self.masks.ndim - 1)))
        return self.masks * gate

    def reset(self):
        pass


class BranchDifference:
    """A detector without an image model: at a check, the user's and the safety context's
    predictions of the same latent (two more conds in the model call) are compared. Its score is
    the mean change relative to the mean size of the user's prediction (0 when the safety text
    equals the prompt, as strip mode makes it for a prompt without unsafe words); its mask is where
    the change, relative to the image's largest, exceeds `region_threshold` (the `auto` region's
    rule). It knows only what the prompt and the safety text differ in, not what the image shows."""
    uses_branches = True
    name = "branch difference"

    def __init__(self, region_threshold=0.5):
        self.region_threshold = check_unit_interval("region_threshold", region_threshold)

    def judge(self, user, safe):
        user, safe = user.float(), safe.float()
        dims = tuple(range(1, user.ndim))
        change = (safe - user).abs().mean(dim=dims) / user.abs().mean(dim=dims).clamp_min(1e-8)
        # [B, 1, h, w], or [B, 1, T, h, w] for video: a clip's region is where any frame changes
        masks = (change_map(user, safe) > self.region_threshold).flatten(1, -3).amax(1)
        return [ItemResult(float(c.clamp(0.0, 1.0)), m.float(), ("branch difference",) if float(c) > 0 else ())
                for c, m in zip(change, masks)]
