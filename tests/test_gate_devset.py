"""Issue 24's hand-written dev set: frozen by its sha256, balanced as written, and read by the report."""
import sys

import pytest

from pack_import import PACK_DIR

sys.path.insert(0, str(PACK_DIR))
from gate_training import dev_report  # noqa: E402


def test_the_dev_set_is_the_frozen_one_and_balanced(tmp_path):
    rows = dev_report.load_dev_set()
    unsafe = [r for r in rows if r.label == "unsafe"]
    benign = [r for r in rows if r.label == "benign"]
    assert len(rows) >= 200 and abs(len(unsafe) - len(benign)) <= 10
    cats = {"sexual", "violence", "shocking", "self-harm", "hate", "harassment", "illegal activity"}
    assert {r.category for r in unsafe} == cats
    assert {r.kind for r in unsafe} == {"explicit", "implicit", "euphemism", "misspelling", "art_style"}
    assert {r.kind for r in benign} == {"negation", "benign_sense", "art_style", "plain"}
    edited = tmp_path / "dev.csv"
    edited.write_bytes(dev_report.DEV_SET.read_bytes().replace(b"espresso", b"espressos"))
    with pytest.raises(RuntimeError, match="frozen"):
        dev_report.load_dev_set(edited)


def test_the_wilson_interval_brackets_the_share():
    p, lo, hi = dev_report.wilson(10, 20)
    assert p == 0.5 and lo < 0.5 < hi and 0.27 < lo < 0.3
    assert dev_report.wilson(0, 5)[1] == 0.0 and dev_report.wilson(5, 5)[2] == 1.0
