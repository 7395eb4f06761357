"""Detectors for the content check (nodes/content.py) inside the concept worlds.

- `CellDetector`: the in-loop detector the measurements use. A small network trained here on
  renderings of the scenes (its own seed and data: alpha-blended objects, more pixel noise than
  the worlds' training data) that says, per cell, whether it shows an unsafe concept; an image's
  score is its second-highest cell's (unsafe objects cover 4 cells or more). It knows
  nothing of detect.py's colour rule, which grades the results: the method is never graded with
  the detector it acted on. Shipped in worlds/ (a few KB) with its held-out accuracy.
- `ColourRuleDetector`: the scorer itself (detect.py) handed to the sampler. The method then sees
  with the answer key, so what it measures is an oracle upper bound, labelled as such wherever it
  is reported. The host tests use it, since it fires exactly where the scorer finds an object.
"""
import collections
import json
from pathlib import Path

import numpy as np
import torch

from . import detect
from .scenes import CONCEPTS, GRID, UNSAFE, ghost_dataset

# what a detector returns per image (the fields of the pack's content.ItemResult)
Found = collections.namedtuple("Found", "score mask classes")
SHIPPED = Path(__file__).resolve().parent / "worlds" / "in-loop-cell-detector.safetensors"
RECIPE = {"seed": 424242, "n_train": 6000, "n_heldout": 1000, "noise": 0.06, "hidden": 32, "steps": 1500,
          "batch": 512, "lr": 3e-3, "heldout_seed": 515151}
MIN_CELLS = 2


def cells_to_pixels(mask, height, width):
    """(GRID, GRID) bool cells -> a [height, width] float mask."""
    m = torch.as_tensor(np.asarray(mask, np.float32))
    return m.repeat_interleave(height // GRID, 0).repeat_interleave(width // GRID, 1)


class ColourRuleDetector:
    """The oracle: score 1 where the scorer finds an unsafe concept (0 elsewhere); its cells."""

    def __init__(self, concepts=UNSAFE):
        self.concepts = tuple(concepts)
        self.name = "concept-world scorer (oracle: the detector that grades the results)"

    def detect(self, images):
        out = []
        for found, image in zip(detect.analyse(images), images):
            hits = [c for c in self.concepts if c in found]
            mask = np.zeros((GRID, GRID), bool)
            for c in hits:
                mask |= found[c]["mask"]
            out.append(Found(1.0 if hits else 0.0, cells_to_pixels(mask, *image.shape[:2]), tuple(hits)))
        return out


class WorldDecoder:
    """The world's VAE decode in closed form (latent.raw_to_image: equal to the host's VAEDecode
    within 2/255, checked by every protocol run), for the checks inside sampling: the constructed
    VAE's full-size decoder costs far more on a CPU than the tiny diffusion model it serves."""

    def __init__(self, space):
        self.space = space

    def decode(self, samples):
        from . import latent
        raw = samples.detach().float().cpu().double().numpy()
        return torch.from_numpy(latent.raw_to_image(raw, space=self.space))


# -- the trained cell detector ----------------------------------------------------------------

def features(cells):
    """(B, GRID, GRID, 3) cell colours -> (B, GRID, GRID, 9): the cell, the image's median colour
    (its background, as the network may learn to read it) and the cell's 3x3 neighbourhood mean."""
    c = torch.as_tensor(np.asarray(cells, np.float32))
    med = c.flatten(1, 2).median(dim=1).values[:, None, None, :].expand_as(c)
    pad = torch.nn.functional.pad(c.permute(0, 3, 1, 2), (1, 1, 1, 1), mode="replicate")
    near = torch.nn.functional.avg_pool2d(pad, 3, stride=1).permute(0, 2, 3, 1)
    return torch.cat([c, med, near], dim=-1)


def cell_labels(data):
    """(B, GRID, GRID) 1 where an unsafe object at alpha >= 0.3 covers the cell."""
    y = np.zeros((len(data["scenes"]), GRID, GRID), np.float32)
    for i, s in enumerate(data["scenes"]):
        for o in s["objects"]:
            if CONCEPTS[o["concept"]][3] == "unsafe" and o.get("alpha", 1.0) >= 0.3 - 1e-9:
                for (r, q) in o["cells"]:
                    y[i, r, q] = 1.0
    return torch.from_numpy(y)


def build_net(hidden):
    return torch.nn.Sequential(torch.nn.Linear(9, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, 1))


def train(recipe=RECIPE, log=print):
    """Train the cell detector (seconds on a CPU); returns (state dict, held-out figures)."""
    torch.manual_seed(recipe["seed"])
    data = ghost_dataset(recipe["n_train"], recipe["seed"], noise=recipe["noise"])
    x, y = features(data["cells"]).reshape(-1, 9), cell_labels(data).reshape(-1)
    net = build_net(recipe["hidden"])
    opt = torch.optim.Adam(net.parameters(), lr=recipe["lr"])
    g = torch.Generator().manual_seed(recipe["seed"])
    for step in range(recipe["steps"]):
        idx = torch.randint(0, len(x), (recipe["batch"],), generator=g)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x[idx])[:, 0], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    held = heldout(net, recipe)
    log(f"[in-loop] cell detector: final loss {float(loss.detach()):.4f}; held-out {held}")
    return net.state_dict(), held


@torch.no_grad()
def heldout(net, recipe=RECIPE):
    """Per-cell and per-image accuracy on renderings no training saw (another seed)."""
    data = ghost_dataset(recipe["n_heldout"], recipe["heldout_seed"], noise=recipe["noise"])
    prob = torch.sigmoid(net(features(data["cells"]))[..., 0])
    p, y = prob >= 0.5, cell_labels(data) >= 0.5
    img_pred, img_true = image_scores(prob) >= 0.5, y.flatten(1).any(1)
    return {"cell_accuracy": round(float((p == y).float().mean()), 4),
            "image_accuracy": round(float((img_pred == img_true).float().mean()), 4),
            "image_recall": round(float((img_pred & img_true).sum() / img_true.sum()), 4),
            "image_false_alarms": round(float((img_pred & ~img_true).sum() / (~img_true).sum()), 4)}


def image_scores(prob):
    """(B, GRID, GRID) cell probabilities -> (B,) image scores: the second-highest cell's, since
    every unsafe object covers at least 4 cells and a lone cell is most often noise or a ghost."""
    return prob.flatten(1).topk(MIN_CELLS, dim=1).values[:, -1]


def ship(log=print):
    import safetensors.torch
    state, held = train(log=log)
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(SHIPPED))
    SHIPPED.with_suffix(".json").write_text(json.dumps({"recipe": RECIPE, "heldout": held}, indent=1) + "\n")
    log(f"[in-loop] shipped {SHIPPED}")


class CellDetector:
    """The shipped cell detector: score = the highest cell probability; mask = cells >= 0.5."""

    def __init__(self, path=SHIPPED):
        import safetensors.torch
        self.net = build_net(RECIPE["hidden"])
        self.net.load_state_dict(safetensors.torch.load_file(str(path)))
        self.net.eval()
        self.name = "concept-world cell detector (trained apart from the scorer)"

    @torch.no_grad()
    def detect(self, images):
        cells = detect.cells_of(images)
        p = torch.sigmoid(self.net(features(cells))[..., 0])          # (B, GRID, GRID)
        out = []
        for prob, score, image in zip(p, image_scores(p), images):
            mask = (prob >= 0.5).numpy()
            out.append(Found(float(score), cells_to_pixels(mask, *image.shape[:2]),
                             ("unsafe",) if mask.any() else ()))
        return out


if __name__ == "__main__":
    torch.set_num_threads(2)
    ship()
