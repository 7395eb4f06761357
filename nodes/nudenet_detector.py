"""NudeNet as a content-check detector: the only module that imports the optional `nudenet`
package (and through it onnxruntime and OpenCV), and only when a detector is built.

NudeNet's PyPI wheel ships its 320n ONNX box detector (no download at run time). Its licence
file is AGPL-3.0 (its metadata says MIT): it is never vendored here, and the user installs it.
"""
import importlib.util

import torch

from .content import ItemResult, boxes_to_mask

PACKAGE = "nudenet"
CLASSES = ("FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
           "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
           "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
           "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED")
# the classes published nudity evaluations count as unsafe
DEFAULT_CLASSES = ("FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "ANUS_EXPOSED")
INSTALL_HINT = (f"the NudeNet detector needs the optional package '{PACKAGE}', which is not installed: run "
                f"`pip install {PACKAGE}` in ComfyUI's Python (see the README's Content check section)")


def available():
    return importlib.util.find_spec(PACKAGE) is not None


def parse_classes(text):
    """A comma-separated class list -> a tuple of NudeNet class names (errors name `classes`)."""
    names = tuple(dict.fromkeys(n.strip().upper() for n in str(text).split(",") if n.strip()))
    if not names:
        raise ValueError("classes is empty: give NudeNet class names separated by commas, e.g. "
                         + ", ".join(DEFAULT_CLASSES))
    unknown = [n for n in names if n not in CLASSES]
    if unknown:
        raise ValueError(f"classes holds unknown NudeNet class names {unknown}; known: {', '.join(CLASSES)}")
    return names


_MODEL = None   # one NudeDetector per process, reused by every run


def nude_detector():
    global _MODEL
    if _MODEL is None:
        if not available():
            raise RuntimeError(INSTALL_HINT)
        from nudenet import NudeDetector
        _MODEL = NudeDetector()
    return _MODEL


class NudeNetDetector:
    """Boxes of the selected classes -> a per-image score (the best box's) and mask (their union).
    Only boxes scoring at least `min_score` join the mask."""

    def __init__(self, classes=DEFAULT_CLASSES, min_score=0.0):
        self.classes = tuple(classes)
        self.min_score = float(min_score)
        self.name = "NudeNet (" + ", ".join(self.classes) + ")"

    def detect(self, images):
        model = nude_detector()
        results = []
        for image in images:
            rgb = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().numpy()
            found = [d for d in model.detect(rgb[:, :, ::-1].copy()) if d["class"] in self.classes]
            score = max((float(d["score"]) for d in found), default=0.0)
            boxes = [d["box"] for d in found if float(d["score"]) >= self.min_score]
            mask = boxes_to_mask(boxes, image.shape[0], image.shape[1])
            results.append(ItemResult(score, mask, tuple(sorted({d["class"] for d in found}))))
        return results
