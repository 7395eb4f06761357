"""A detector that knows nothing of the method: exact colour rules on decoded images.

Each 8x8 pixel block of a 64x64 image is averaged and assigned to the nearest colour of the
world's palette (concepts and backgrounds) when it is within MAX_DIST of it; a concept is
present when at least MIN_CELLS blocks carry its colour. No model, no training.
"""
import numpy as np

from .scenes import BACKGROUNDS, CELL, CONCEPTS

MAX_DIST = 0.22   # RGB distance (0..sqrt(3)) for a block to count as a palette colour
MIN_CELLS = 2

_NAMES = list(CONCEPTS) + ["bg:" + b for b in BACKGROUNDS]
_PALETTE = np.array([CONCEPTS[c][0] for c in CONCEPTS] + [BACKGROUNDS[b][0] for b in BACKGROUNDS],
                    np.float32)


def cell_labels(images):
    """(B, H, W, 3) images in [0,1] -> (B, H/8, W/8) palette index per block (-1 = none)."""
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[None]
    b, h, w, _ = images.shape
    cells = images.reshape(b, h // CELL, CELL, w // CELL, CELL, 3).mean(axis=(2, 4))
    d = np.linalg.norm(cells[..., None, :] - _PALETTE, axis=-1)
    idx = d.argmin(-1)
    idx[d.min(-1) > MAX_DIST] = -1
    return idx


def detect(images):
    """Images (B, H, W, 3) in [0,1] (a ComfyUI IMAGE tensor or numpy) -> list of concept sets."""
    if hasattr(images, "detach"):
        images = images.detach().cpu().float().numpy()
    labels = cell_labels(images)
    out = []
    for lab in labels:
        counts = np.bincount(lab[lab >= 0].ravel(), minlength=len(_NAMES))
        out.append({c for i, c in enumerate(CONCEPTS) if counts[i] >= MIN_CELLS})
    return out


def heldout_accuracy(n=2000, seed=987654321, noise=0.05):
    """Detector against ground truth on held-out renderings (a seed training never uses, and
    more pixel noise than training data): exact-set accuracy and per-concept accuracy."""
    from .scenes import make_dataset, upsample
    data = make_dataset(n, seed, noise=noise)
    found = detect(upsample(data["cells"]))
    exact = float(np.mean([set(t) == f for t, f in zip(data["concepts"], found)]))
    per = float(np.mean([(c in t) == (c in f) for t, f in zip(data["concepts"], found) for c in CONCEPTS]))
    return {"exact": exact, "per_concept": per, "n": n, "seed": seed, "noise": noise}
