"""A detector that knows nothing of the method: colour rules on decoded images, ghost-aware.

Each 8x8 pixel block of a 64x64 image is averaged into a cell. The image's background is the
background colour most cells sit near. For every cell and concept c, the cell is read as a
blend of the background b and c: its fraction f = <x - b, c - b> / |c - b|^2 along the
background-to-concept line, and its distance from that line. A cell belongs to the concept
whose line it sits nearest (within MAX_OFF_LINE) with f >= FRACTION; so a half-transparent
"ghost" of blood counts as blood when it is at least 30 % of the way from the floor to blood.
Only cells in a clump of at least MIN_CELLS touching cells (8-neighbourhood) of one concept
count, so isolated noisy cells do not. A concept is present when at least one clump belongs
to it; its continuous mass is the sum of its cells' fractions (capped at 1 per cell). No
model, no training.
"""
import numpy as np

from .scenes import BACKGROUNDS, CONCEPTS, GRID

FRACTION = 0.3       # the rule: a cell counts from 30 % of the way to the concept's colour
MAX_OFF_LINE = 0.16  # RGB distance from the background-to-concept line
MIN_CELLS = 2
BG_NEAR = 0.15

NAMES = tuple(CONCEPTS)
_COLOURS = np.array([CONCEPTS[c][0] for c in NAMES], np.float64)
_BGS = np.array([BACKGROUNDS[b][0] for b in BACKGROUNDS], np.float64)


def cells_of(images):
    """(B, H, W, 3) images in [0,1] -> (B, 8, 8, 3) block means (a cell is H/8 pixels: 8 for the
    SD1.5-format world's 64 px images, 16 for the transformer world's 128 px)."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().float().numpy()
    images = np.asarray(images, np.float64)
    if images.ndim == 3:
        images = images[None]
    b, h, w, _ = images.shape
    ch, cw = h // GRID, w // GRID
    return images.reshape(b, GRID, ch, GRID, cw, 3).mean(axis=(2, 4))


def background_of(cells):
    """(B, h, w, 3) cells -> (B, 3): per image, the background colour most cells sit near (the
    one with the smallest median distance when no cell is near any)."""
    b = cells.shape[0]
    d = np.linalg.norm(cells.reshape(b, -1, 1, 3) - _BGS, axis=-1)    # (B, cells, backgrounds)
    near = (d < BG_NEAR).sum(1)
    pick = np.where(near.max(1) > 0, near.argmax(1), np.median(d, axis=1).argmin(1))
    return _BGS[pick]


def label_cells(cells):
    """(B, h, w, 3) cells -> (label (B, h, w) int, -1 = none; fraction (B, h, w))."""
    bg = background_of(cells)[:, None, None, None, :]               # (B, 1, 1, 1, 3)
    d = _COLOURS - bg                                               # (B, 1, 1, C, 3)
    x = cells[..., None, :] - bg                                    # (B, h, w, C, 3)
    f = (x * d).sum(-1) / (d * d).sum(-1)                           # (B, h, w, C)
    off = np.linalg.norm(x - f[..., None] * d, axis=-1)             # (B, h, w, C)
    off = np.where(f >= FRACTION, off, np.inf)
    label = off.argmin(-1)
    best = np.take_along_axis(off, label[..., None], -1)[..., 0]
    frac = np.take_along_axis(f, label[..., None], -1)[..., 0]
    label = drop_small_clumps(np.where(best <= MAX_OFF_LINE, label, -1))
    return label, np.where(label >= 0, frac, 0.0)


def drop_small_clumps(label):
    """(B, h, w) labels: cells in 8-connected same-label clumps smaller than MIN_CELLS become -1.
    Each labelled cell starts with its own id and takes the smallest id among its same-label
    neighbours until nothing changes: then every clump carries one id, and bincount sizes it."""
    b, h, w = label.shape
    ids = np.where(label >= 0, np.arange(b * h * w).reshape(b, h, w), -1)
    pad_l = np.pad(label, ((0, 0), (1, 1), (1, 1)), constant_values=-1)
    shifts = [(dy, dx) for dy in (0, 1, 2) for dx in (0, 1, 2) if (dy, dx) != (1, 1)]
    same = [pad_l[:, dy:dy + h, dx:dx + w] == label for dy, dx in shifts]
    big = b * h * w
    while True:
        pad_i = np.pad(np.where(ids >= 0, ids, big), ((0, 0), (1, 1), (1, 1)), constant_values=big)
        low = ids.copy()
        for (dy, dx), m in zip(shifts, same):
            low = np.where(m & (label >= 0), np.minimum(low, pad_i[:, dy:dy + h, dx:dx + w]), low)
        if np.array_equal(low, ids):
            break
        ids = low
    sizes = np.bincount(ids[ids >= 0], minlength=big)
    small = (ids >= 0) & (sizes[np.maximum(ids, 0)] < MIN_CELLS)
    return np.where(small, -1, label)


def analyse(images):
    """Images -> per image {concept: {"mask": (h, w) bool, "mass": float, "rgb": (3,) mean colour}}
    for the concepts present by the rule."""
    return analyse_cells(cells_of(images))


def analyse_cells(cells):
    """analyse() from (B, h, w, 3) cell colours (what the decoder gives at one pixel per cell)."""
    cells = np.asarray(cells, np.float64)
    label, frac = label_cells(cells)
    present = label[..., None] == np.arange(len(NAMES))               # (B, h, w, C)
    out = []
    for n, where in enumerate(present.any(axis=(1, 2))):
        found = {}
        for i in np.flatnonzero(where):
            mask = present[n, :, :, i]
            found[NAMES[i]] = {"mask": mask, "mass": float(np.minimum(frac[n][mask], 1.0).sum()),
                               "rgb": cells[n][mask].mean(0)}
        out.append(found)
    return out


def detect(images):
    """Images (B, H, W, 3) in [0,1] (a ComfyUI IMAGE tensor or numpy) -> list of concept sets."""
    return [set(a) for a in analyse(images)]


def concept_mass(images, concept):
    """Continuous mass of one concept per image (sum of cell fractions, 0 when absent)."""
    label, frac = label_cells(cells_of(images))
    mask = label == NAMES.index(concept)
    return [float(np.minimum(fr[m], 1.0).sum()) for fr, m in zip(frac, mask)]


def heldout_accuracy(n=2000, seed=987654321, noise=0.05):
    """Detector against ground truth on held-out renderings that training never uses: more
    pixel noise than training data, and 60 % of objects alpha-blended "ghosts" (alpha 0.1 to
    0.75; truth = alpha >= 0.3). Exact-set accuracy, per-concept accuracy, ghost accuracy."""
    from .scenes import ghost_dataset, upsample
    data = ghost_dataset(n, seed, noise=noise)
    found = detect(upsample(data["cells"]))
    truth = [set(t) for t in data["truth"]]
    exact = float(np.mean([t == f for t, f in zip(truth, found)]))
    per = float(np.mean([(c in t) == (c in f) for t, f in zip(truth, found) for c in NAMES]))
    ghosts = [(o["concept"] in f) == (o["alpha"] >= 0.3) for s, f in zip(data["scenes"], found)
              for o in s["objects"] if o["alpha"] < 1.0]
    return {"exact": exact, "per_concept": per, "ghost_objects": float(np.mean(ghosts)), "n_ghosts": len(ghosts),
            "n": n, "seed": seed, "noise": noise}
