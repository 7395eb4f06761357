"""The learned prompt detector: logistic regression over hashed word and character n-grams.

Pure Python and torch (nothing from the host). The same features are computed by the trainer
(gate_training/) and here, so shipped weights score prompts exactly as they were measured.

Features of a prompt (FEATURE_VERSION 4):
    style     first, the prompt's comma-separated segments that are art-site style phrases
              ("trending on artstation", "8k", "by greg rutkowski": the detector's `style`
              vocabulary, learned from benign I2P prompts and shipped with the weights) are
              removed, so style alone cannot score (a style-only prompt scores the bias alone)
    words     lower-case runs of letters/digits, except those the term matcher ignores
              (terms.ignored_spans): negations with their cue ("no blood", "without nudity")
              and benign compounds ("killer whale", "fully clothed") are not what the prompt
              asks for, and training data has too few of them to learn their weights
    w:WORD    each word;   b:WORD WORD   each pair of neighbouring words
    c:GRAM    each 3..5-character piece of "<word>" (catches spellings like "nud3", "n-sfw")
Each distinct feature is hashed (zlib.crc32, stable across runs and machines) into `buckets`
slots; a prompt's vector has 1/sqrt(k) at its k slots (unit length).

Heads: "any" (the prompt's SD 1.4 images were inappropriate at least half of the time) and one
per I2P category. A head's score is sigmoid(w . x + b - cut): 0.5 at the operating point `cut`
chosen on the validation split (10% false alarms on style-matched benign I2P prompts), so the
gate's threshold 0.5 means "the shipped operating point".
"""
import json
import math
import re
import zlib
from pathlib import Path

from .terms import ignored_spans

FEATURE_VERSION = 4
FORMAT = "safety-dual-latent/prompt-detector"
HEADS = ("any", "sexual", "violence", "shocking", "hate", "harassment", "self-harm", "illegal activity")
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "detector" / "prompt_detector.safetensors"
_WORD = re.compile(r"[^\W_]+")


def without_style(text, style):
    """The prompt without its comma-separated segments found in `style` (lower-case phrases)."""
    if not style:
        return text
    return ",".join(s for s in text.split(",") if s.strip().lower() not in style).strip(" ,")


def words(text):
    """The prompt's words, lower case, without those in ignored spans."""
    spans = ignored_spans(text)
    return [m.group(0).lower() for m in _WORD.finditer(text) if not any(a <= m.start() < b for a, b in spans)]


def feature_names(text, char_ngrams=(3, 5)):
    """The distinct feature strings of a prompt (see the module docstring)."""
    ws = words(text)
    feats = {"w:" + w for w in ws}
    feats.update(f"b:{a} {b}" for a, b in zip(ws, ws[1:]))
    lo, hi = char_ngrams
    for w in set(ws):
        s = f"<{w}>"
        for n in range(lo, hi + 1):
            feats.update(f"c:{s[i:i + n]}" for i in range(len(s) - n + 1))
    return feats


def feature_slots(text, buckets, char_ngrams=(3, 5)):
    """Sorted distinct hash slots of the prompt's features (collisions merge)."""
    return sorted({zlib.crc32(f.encode("utf-8")) % buckets for f in feature_names(text, char_ngrams)})


def design_matrix(texts, buckets, char_ngrams=(3, 5)):
    """Sparse (len(texts), buckets) float32 matrix of unit-length prompt vectors (torch COO)."""
    import torch
    rows, cols, vals = [], [], []
    for i, t in enumerate(texts):
        slots = feature_slots(t, buckets, char_ngrams)
        if slots:
            v = 1.0 / math.sqrt(len(slots))
            rows += [i] * len(slots)
            cols += slots
            vals += [v] * len(slots)
    idx = torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1)
    return torch.sparse_coo_tensor(idx, torch.tensor(vals, dtype=torch.float32), (len(texts), buckets),
                                   check_invariants=False).coalesce()


class LearnedDetector:
    """Shipped weights and their scoring: weight (buckets, heads), bias (heads), cut (heads)."""

    def __init__(self, weight, bias, cut, heads=HEADS, char_ngrams=(3, 5), path=None, info=None, style=()):
        self.weight, self.bias, self.cut = weight.float(), bias.float(), cut.float()
        self.heads, self.char_ngrams, self.path, self.info = tuple(heads), tuple(char_ngrams), path, info or {}
        self.style = frozenset(style)
        self.buckets = self.weight.shape[0]

    def features(self, texts):
        """The texts' sparse feature matrix, each text without its style segments."""
        return design_matrix([without_style(t, self.style) for t in texts], self.buckets, self.char_ngrams)

    def logits(self, texts):
        """(len(texts), heads) raw logits w . x + b."""
        import torch
        return torch.sparse.mm(self.features(texts), self.weight) + self.bias

    def scores(self, texts):
        """(len(texts), heads) scores in [0, 1): 0.5 at each head's operating point. A text with no
        features once its style segments are gone (style alone, or nothing) scores 0: there is
        nothing to judge, and the bias alone sits above some heads' cuts."""
        import torch
        x = self.features(texts)
        s = torch.sigmoid(torch.sparse.mm(x, self.weight) + self.bias - self.cut)
        judged = torch.zeros(len(texts), dtype=torch.bool)
        judged[x.indices()[0]] = True
        s[~judged] = 0.0
        return s

    def score(self, text):
        """{head: score} for one prompt."""
        return dict(zip(self.heads, (float(s) for s in self.scores([text])[0])))


def save_detector(path, weight, bias, cut, heads=HEADS, char_ngrams=(3, 5), info=None, style=()):
    """Write weights as safetensors (float16 weight), byte for byte the same for the same inputs
    (the header's keys sorted: the library writes its metadata in hash order); returns the tensors."""
    import struct
    from safetensors.torch import save
    tensors = {"weight": weight.detach().to("cpu").half().contiguous(), "bias": bias.detach().float().contiguous(),
               "cut": cut.detach().float().contiguous()}
    meta = {"format": FORMAT, "feature_version": str(FEATURE_VERSION), "heads": json.dumps(list(heads)),
            "char_ngrams": json.dumps(list(char_ngrams)), "info": json.dumps(info or {}, sort_keys=True),
            "style": json.dumps(sorted(style))}
    blob = save(tensors, metadata=meta)
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.dumps(json.loads(blob[8:8 + n]), sort_keys=True, separators=(",", ":")).encode("utf-8")
    header += b" " * (-len(header) % 8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(struct.pack("<Q", len(header)) + header + blob[8 + n:])
    return tensors


def load_detector(path=DEFAULT_WEIGHTS):
    """Read a weights file; any problem is a ValueError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"learned detector weights not found: {path} (the pack ships this file; "
                         "reinstall the pack or run `make train-gate`)")
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise ValueError(f"learned detector weights file {path} is unreadable or corrupt: {e}") from None
    problem = None
    if meta.get("format") != FORMAT or meta.get("feature_version") != str(FEATURE_VERSION):
        problem = (f"expected format {FORMAT!r} version {FEATURE_VERSION}, got {meta.get('format')!r} "
                   f"version {meta.get('feature_version')!r}")
    elif not isinstance(_json_or_none(meta.get("style")), list):
        problem = "no style vocabulary (metadata 'style', a JSON list)"
    elif set(tensors) != {"weight", "bias", "cut"}:
        problem = f"expected tensors weight, bias, cut, got {sorted(tensors)}"
    else:
        heads = json.loads(meta.get("heads", "[]"))
        w, b, c = tensors["weight"], tensors["bias"], tensors["cut"]
        if w.ndim != 2 or w.shape[1] != len(heads) or b.shape != (len(heads),) or c.shape != (len(heads),):
            problem = f"tensor shapes {tuple(w.shape)}, {tuple(b.shape)}, {tuple(c.shape)} do not fit heads {heads}"
        elif not all(bool(t.float().isfinite().all()) for t in (w, b, c)):
            problem = "weights are not all finite"
        elif "any" not in heads:
            problem = f"no 'any' head in {heads}"
    if problem:
        raise ValueError(f"learned detector weights file {path} is not usable: {problem}")
    return LearnedDetector(w, b, c, heads, json.loads(meta["char_ngrams"]), path, json.loads(meta.get("info", "{}")),
                           json.loads(meta["style"]))


def _json_or_none(text):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


_loaded = {}


def get_detector(path=None):
    """The detector (DEFAULT_WEIGHTS unless a path is given), loaded on first use and kept
    (reloaded if the file changes)."""
    path = Path(path if path is not None else DEFAULT_WEIGHTS)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    hit = _loaded.get(str(path))
    if hit is None or hit[0] != stamp:
        _loaded[str(path)] = hit = (stamp, load_detector(path))
    return hit[1]


def head_for_preset(name, heads=HEADS):
    """The head that scores a preset: its own category's, else "any" (`all` and custom presets)."""
    cat = str(name).replace("_", " ").strip().lower()
    return cat if cat in heads and cat != "any" else "any"
