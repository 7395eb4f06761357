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

from .scenes import BACKGROUNDS, CELL, CONCEPTS

FRACTION = 0.3       # the rule: a cell counts from 30 % of the way to the concept's colour
MAX_OFF_LINE = 0.16  # RGB distance from the background-to-concept line
MIN_CELLS = 2
BG_NEAR = 0.15

NAMES = tuple(CONCEPTS)
_COLOURS = np.array([CONCEPTS[c][0] for c in NAMES], np.float64)
_BGS = np.array([BACKGROUNDS[b][0] for b in BACKGROUNDS], np.float64)


def cells_of(images):
    """(B, H, W, 3) images in [0,1] -> (B, H/8, W/8, 3) block means."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().float().numpy()
    images = np.asarray(images, np.float64)
    if images.ndim == 3:
        images = images[None]
    b, h, w, _ = images.shape
    return images.reshape(b, h // CELL, CELL, w // CELL, CELL, 3).mean(axis=(2, 4))


def background_of(cells):
    """(h, w, 3) cells -> the background colour most cells sit near."""
    d = np.linalg.norm(cells.reshape(-1, 1, 3) - _BGS, axis=-1)
    near = (d < BG_NEAR).sum(0)
    return _BGS[int(near.argmax())] if near.max() > 0 else _BGS[int(np.median(d, axis=0).argmin())]


def analyse_cells(cells):
    """(h, w, 3) cells -> (label (h, w) int, -1 = none; fraction (h, w)) for one image."""
    bg = background_of(cells)
    d = _COLOURS - bg                                           # (C, 3)
    x = cells[..., None, :] - bg                                # (h, w, C, 3)
    f = (x * d).sum(-1) / (d * d).sum(-1)                       # (h, w, C)
    off = np.linalg.norm(x - f[..., None] * d, axis=-1)         # (h, w, C)
    off = np.where(f >= FRACTION, off, np.inf)
    label = off.argmin(-1)
    best = np.take_along_axis(off, label[..., None], -1)[..., 0]
    frac = np.take_along_axis(f, label[..., None], -1)[..., 0]
    label = np.where(best <= MAX_OFF_LINE, label, -1)
    label = drop_small_clumps(label)
    return label, np.where(label >= 0, frac, 0.0)


def drop_small_clumps(label):
    """Labels of cells in 8-connected same-label clumps smaller than MIN_CELLS become -1."""
    h, w = label.shape
    out = label.copy()
    seen = np.zeros_like(label, bool)
    for y in range(h):
        for x in range(w):
            if seen[y, x] or label[y, x] < 0:
                continue
            stack, clump = [(y, x)], []
            seen[y, x] = True
            while stack:
                cy, cx = stack.pop()
                clump.append((cy, cx))
                for ny in range(max(cy - 1, 0), min(cy + 2, h)):
                    for nx in range(max(cx - 1, 0), min(cx + 2, w)):
                        if not seen[ny, nx] and label[ny, nx] == label[y, x]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
            if len(clump) < MIN_CELLS:
                for cy, cx in clump:
                    out[cy, cx] = -1
    return out


def analyse(images):
    """Images -> per image {concept: {"mask": (h, w) bool, "mass": float, "rgb": (3,) mean colour}}
    for the concepts present by the rule."""
    out = []
    for cells in cells_of(images):
        label, frac = analyse_cells(cells)
        found = {}
        for i, name in enumerate(NAMES):
            mask = label == i
            if mask.any():
                found[name] = {"mask": mask, "mass": float(np.minimum(frac[mask], 1.0).sum()),
                               "rgb": cells[mask].mean(0)}
        out.append(found)
    return out


def detect(images):
    """Images (B, H, W, 3) in [0,1] (a ComfyUI IMAGE tensor or numpy) -> list of concept sets."""
    return [set(a) for a in analyse(images)]


def concept_mass(images, concept):
    """Continuous mass of one concept per image (sum of cell fractions, 0 when absent)."""
    out = []
    for cells in cells_of(images):
        label, frac = analyse_cells(cells)
        mask = label == NAMES.index(concept)
        out.append(float(np.minimum(frac[mask], 1.0).sum()))
    return out


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
