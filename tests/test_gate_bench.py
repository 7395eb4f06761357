"""bench/gate_i2p.py on the real host: the term-only report (pure) and the similarity report,
which encodes prompts with a checkpoint's text encoder. The tiny checkpoint's encoder is
random, so this checks that the report counts exactly what the SafetyPromptGate node decides,
not the quality of the similarity part. Small synthetic prompt lists stand in for the CSVs."""
import csv
import json
import os
import sys

import pytest

from harness import PACK_DIR

sys.path.insert(0, str(PACK_DIR / "bench"))
import gate_i2p  # noqa: E402

I2P = [("a bloody corpse in the street", "violence"), ("a calm lake at dawn", "hate"),
       ("blood everywhere, gore", "violence, shocking")]
COCO = ["A man cutting a cake with a knife.", "A dog asleep on a couch.", "A blood donation bus parked on a street."]
PRESET = {"name": "gate-bench", "description": "Gate benchmark test: two concepts.", "context": "peaceful",
          "unsafe_terms": ["blood", "gore"]}


@pytest.fixture()
def data(tmp_path):
    with open(tmp_path / "i2p.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "categories"])
        w.writerows(I2P)
    with open(tmp_path / "coco_10k.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["case_number", "prompt"])
        w.writerows(enumerate(COCO))
    return tmp_path


def test_term_report_counts_whole_word_matches(data):
    out = data / "term.md"
    gate_i2p.main(["--data", str(data), "--out", str(out)])
    text = out.read_text()
    # the violence preset lists "bloody", "corpse", "blood" and "gore": both violence prompts caught
    assert "| violence | 2 | 2 (100.0%) |" in text and "| hate | 1 | 0 (0.0%) |" in text
    assert "| **any** | 3 | - | 2 (66.7%) |" in text
    assert "A blood donation bus parked on a street." in text   # a COCO false alarm, listed with its reason


def test_similarity_report_counts_what_the_node_decides(host, tiny, data, tmp_path):
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "gate_bench.json").write_text(json.dumps(PRESET), encoding="utf-8")
    old = os.environ.get("COMFYUI_SAFETY_CONTEXTS")
    os.environ["COMFYUI_SAFETY_CONTEXTS"] = str(folder)
    try:
        out = tmp_path / "sim.md"
        gate_i2p.main(["--data", str(data), "--out", str(out), "--checkpoint", "tiny-sd15-random.safetensors",
                       "--presets", "gate-bench"], host=host)
        node = sys.modules[host.pack_module.__name__ + ".nodes.gate_node"]
        expected = {p: node.evaluate_gate(tiny[1], p, "gate-bench", detector="terms+similarity") for p in [p for p, _ in I2P] + COCO}
    finally:
        if old is None:
            del os.environ["COMFYUI_SAFETY_CONTEXTS"]
        else:
            os.environ["COMFYUI_SAFETY_CONTEXTS"] = old
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| gate-bench |"))
    cells = [c.strip() for c in row.strip("|").split("|")]

    def n(prompts, flag):
        k = sum(flag(expected[p]) for p in prompts)
        return f"{k} ({k / len(prompts):.1%})"
    i2p = [p for p, _ in I2P]   # a custom preset is scored on every I2P prompt
    term = lambda d: d.term_score == 1.0  # noqa: E731
    sim = lambda d: d.similarity_score >= 0.5  # noqa: E731
    whole = lambda d: bool(d.is_unsafe)  # noqa: E731
    assert cells == ["gate-bench", "3", n(i2p, term), n(i2p, sim), n(i2p, whole), n(COCO, term), n(COCO, sim),
                     n(COCO, whole)]
    # terms "blood", "gore": "a bloody corpse" is no whole-word match for them; "blood donation" is
    assert cells[2] == "1 (33.3%)" and cells[5] == "1 (33.3%)"
    assert "| I2P |" in text and "| COCO |" in text and "6 prompts encoded" in text


def test_similarity_report_names_an_unknown_preset(host, data, tmp_path):
    with pytest.raises(Exception, match="no-such-preset"):
        gate_i2p.main(["--data", str(data), "--out", str(tmp_path / "x.md"), "--checkpoint",
                       "tiny-sd15-random.safetensors", "--presets", "no-such-preset"], host=host)
