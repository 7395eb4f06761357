"""The real-benchmark runner against real ComfyUI servers (plumbing only).

Tiny random checkpoint, a handful of prompts, 2 steps, the colour detector: this checks the
HTTP graphs, sharding across two servers (the session's `server` plus a second HostServer
started here), resume and the table, not any safety number. The nudenet detector and the
I2P CSVs are optional extras that `make bench-real` installs; they are not used here.
"""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.efficacy import runner  # noqa: E402
from harness import TINY_CHECKPOINT, HostServer  # noqa: E402


def test_prompt_sources_and_methods(tmp_path):
    (tmp_path / "i2p.csv").write_text(
        'Unnamed: 0,prompt,categories,hard\n0,"a, b",violence,1\n1,c,"sexual, hate",0\n2,d,hate,0\n3,"",hate,0\n')
    assert runner.load_prompts("i2p", tmp_path) == ["a, b", "c", "d"]
    assert runner.load_prompts("i2p:hate", tmp_path) == ["c", "d"]
    assert runner.load_prompts("i2p:hate", tmp_path, limit=1) == ["c"]
    with pytest.raises(SystemExit, match="nudity.csv is missing"):
        runner.load_prompts("nudity", tmp_path)
    (tmp_path / "p.txt").write_text("x\n\n y \n")
    assert runner.load_prompts(f"file:{tmp_path / 'p.txt'}") == ["x", "y"]
    assert runner.parse_method("ours:at_end:0.25:0.4") == {
        "name": "ours:at_end:0.25:0.4", "family": "ours", "merge": "at_end", "weight": 0.25, "threshold": 0.4}
    with pytest.raises(SystemExit, match="unknown method"):
        runner.parse_method("ours:sometimes:1:0")
    g = runner.build_graph({"checkpoint": "m.safetensors", "steps": 2, "cfg": 7.0, "sampler": "euler",
                            "scheduler": "normal", "width": 64, "height": 64, "preset": "violence",
                            "mode": "append", "negative": "gore"},
                           runner.parse_method("ours:every_step:0.5:0.2"), "blood", 3, "bench/x")
    assert g["5"]["class_type"] == "DualLatentKSampler" and g["5"]["inputs"]["safe_positive"] == ["6", 1]
    assert g["3"]["inputs"]["text"] == ""   # ours gets no negative prompt; only the negative baseline does


@pytest.fixture(scope="module")
def second_server(tmp_path_factory):
    srv = HostServer(tmp_path_factory.mktemp("server2-output"))
    yield srv
    srv.stop()


def test_runner_shards_resumes_and_prints_the_table(server, second_server, tmp_path, capsys):
    unsafe, benign = tmp_path / "unsafe.txt", tmp_path / "benign.txt"
    unsafe.write_text("blood on the floor\na bloody knife\n")
    benign.write_text("a green field\na blue sky\n")
    out = tmp_path / "run"
    argv = ["--checkpoint", f"/some/where/{TINY_CHECKPOINT}", "--prompts", f"file:{unsafe}",
            "--benign", f"file:{benign}", "--detector", "colour", "--servers", f"{server.url},{second_server.url}",
            "--methods", "none,ours:every_step:0.5:0.2", "--steps", "2", "--width", "64", "--height", "64",
            "--preset", "violence", "--out", str(out)]
    assert runner.main(argv) == 0
    first = capsys.readouterr().out
    assert "[runner] 8 jobs, 0 already done, 8 to run on 2 server(s)" in first
    assert "| Ours (dual latent) | every_step w=0.5 tau=0.2 |" in first and "ran 8 job(s)" in first
    recs = [json.loads(ln) for f in sorted((out / "jsonl").glob("*.jsonl")) for ln in f.read_text().splitlines()]
    assert len(recs) == 8
    # sharded by prompt index: even indices on the first server, odd on the second
    assert {r["server"] for r in recs if r["index"] % 2 == 0} == {server.url}
    assert {r["server"] for r in recs if r["index"] % 2 == 1} == {second_server.url}
    assert all((out / r["image"]).stat().st_size > 0 for r in recs)
    table = (out / "table.md").read_text().split("| Method | Setting | Sampling")[0]

    # a rerun skips everything and prints the same table
    assert runner.main(argv) == 0
    second = capsys.readouterr().out
    assert "8 already done, 0 to run" in second and "ran 0 job(s)" in second
    assert (out / "table.md").read_text().split("| Method | Setting | Sampling")[0] == table

    # a lost result is the only job that runs again
    f = out / "jsonl" / "none.jsonl"
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[:-1]) + "\n")
    assert runner.main(argv) == 0
    assert "7 already done, 1 to run" in capsys.readouterr().out
    assert len(f.read_text().splitlines()) == 4
