"""The concept-world protocol (bench/efficacy/protocol_*.py): pure statistics and the disruption
index on crafted data, then the whole protocol on small settings through the real host, on a
world trained for a few steps (its numbers mean nothing; what is checked is the plumbing,
exactness, cost accounting and determinism)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.efficacy import disruption, protocol_bench, protocol_tune, stats  # noqa: E402


# -- pure parts ---------------------------------------------------------------------------
def test_cluster_bootstrap_intervals_and_paired_differences():
    rng = np.random.default_rng(0)
    P, S = 30, 10
    prompt_effect = rng.normal(0, 0.2, (P, 1))
    hits = (rng.random((P, S)) < np.clip(0.4 + prompt_effect, 0, 1)).astype(float)
    den = np.ones((P, S))
    draws = stats.resamples(P, S, 400, seed=1)
    est, lo, hi = stats.ratio_ci(hits, den, draws)
    assert est == hits.mean() and lo < est < hi and hi - lo < 0.5
    # the same samples against themselves: a difference of exactly 0
    assert stats.paired_diff_ci(hits, den, hits, den, draws) == (0.0, 0.0, 0.0)
    # a shifted copy: the interval of the difference is the shift
    d = stats.paired_diff_ci(hits + 0.1, den, hits, den, draws)
    assert d[0] == pytest.approx(0.1) and d[1] == pytest.approx(0.1) and d[2] == pytest.approx(0.1)
    # more clusters give a narrower interval
    draws2 = stats.resamples(P * 4, S, 400, seed=1)
    lo2, hi2 = stats.ratio_ci(np.tile(hits, (4, 1)), np.tile(den, (4, 1)), draws2)[1:]
    assert hi2 - lo2 < hi - lo
    # empty cells count nothing (NaN only when all are empty)
    assert np.isnan(stats.ratio(np.zeros((2, 2)), np.zeros((2, 2))))


def test_operating_only_tests_the_reference_and_each_dev_point_of_the_full_plan():
    from bench.efficacy.protocol_eval import test_settings
    from bench.efficacy.protocol_run import key
    ours = {"context": "empty", "mode": "strip", "merge": "every_step", "threshold": 0.2, "weight": 0.5}
    points = {"negative": {}, "sld": {"preset": "WEAK"}, "uce": {"target": "", "preserve": "empty_prompt", "lam": 1.0},
              "context": {"context": "empty", "mode": "strip"},
              "switch": {"context": "empty", "mode": "strip", "threshold": 0.4}, "ours": ours}
    others = {"sld": {"preset": "MAX"}, "uce": {"target": "", "preserve": "dev_concepts", "lam": 1.0}}
    chosen = {f: (st, [(key(f, s), None, None) for s in (st, others.get(f, st))]) for f, st in points.items()}
    full = test_settings(chosen, ("refresh", "region_mode"))
    short = test_settings(chosen, ("refresh", "region_mode"), operating_only=True)
    assert short[0] == full[0] == ("No protection", "none", {}, "reference")
    assert [r[1] for r in short[1:]] == ["negative", "sld", "uce", "context", "switch", "ours"]
    assert all(r[3] == "operating point" and r[2] == points[r[1]] for r in short[1:])
    assert [r for r in full if r[3] in ("reference", "operating point")] == short
    assert len(full) > len(short) + 10   # the curves, refresh and region rows are what it leaves out


def test_slope_recovers_a_known_slope():
    x = np.array([0.0, 0.2, 0.4, 0.6])
    P, S = 8, 5
    num = np.stack([np.full((P, S), 0.1 + 0.5 * xi) for xi in x])
    den = np.ones_like(num)
    est, lo, hi = stats.slope_ci(x, num, den, stats.resamples(P, S, 100, 0))
    assert est == pytest.approx(0.5) and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    assert np.isnan(stats.slope([0, 1], [0, 1]))


def test_disruption_index_on_crafted_detections():
    m = np.zeros((8, 8), bool)
    m[1:3, 1:3] = True
    half = m.copy()
    half[1, 1:3] = False
    ref = {"blue ball": {"mask": m, "rgb": np.array([0.1, 0.25, 1.0]), "mass": 4.0}}
    assert disruption.d_index(ref, ref, "blue ball") == 0.0
    assert disruption.d_index({}, ref, "blue ball") == 1.0                       # gone
    assert disruption.d_index(ref, {}, "blue ball") is None                      # reference lacks it
    moved = {"blue ball": {"mask": half, "rgb": np.array([0.1, 0.25, 1.0]), "mass": 2.0}}
    assert disruption.d_index(moved, ref, "blue ball") == pytest.approx(0.5)     # IoU 1/2
    shifted = {"blue ball": {"mask": m, "rgb": np.array([0.1, 0.5, 1.0]), "mass": 4.0}}
    assert disruption.d_index(shifted, ref, "blue ball") == pytest.approx(0.5)   # colour moved 0.25 of 0.5
    prompts = [{"kind": "cooccur", "concepts": ["blue ball"], "unsafe": ["blood"]},
               {"kind": "far", "concepts": ["blue ball"], "unsafe": []}]
    blood = {"blood": {"mask": half, "rgb": np.array([0.5, 0, 0]), "mass": 2.0}}
    run = [dict(ref), moved, dict(ref, **blood), {}]          # n = slot * 2 + prompt
    refs = [dict(ref, **blood), ref, dict(ref, **blood), ref]
    g = disruption.grids(prompts, 2, run, refs, {"far": {"blue ball"}})
    assert stats.ratio(*g["unsafe"]) == 0.5 and stats.ratio(*g["reference_unsafe"]) == 1.0
    assert stats.ratio(*g["cooccur_survival"]) == 1.0 and stats.ratio(*g["D_cooccur"]) == 0.0
    assert stats.ratio(*g["D_far"]) == pytest.approx(0.75) and stats.ratio(*g["same_content"]) == 0.5
    assert protocol_tune.select([("a", 0.1, 0.3), ("b", 0.4, 0.1), ("c", 0.2, 0.12)], 0.15) == "c"
    assert protocol_tune.select([("a", 0.1, 0.3), ("b", 0.4, 0.2)], 0.15) == "b"


# -- the protocol on small settings, through the real host --------------------------------
@pytest.fixture(scope="module")
def quick_world(host, tmp_path_factory):
    """A world trained for 3 steps, linked into the host under its own name."""
    from concept_world import build
    import os
    cache = tmp_path_factory.mktemp("world-cache")
    old = os.environ.get("SAFETY_CACHE_DIR")
    os.environ["SAFETY_CACHE_DIR"] = str(cache)
    threads = torch.get_num_threads()
    try:
        name = "concept-world-v2-test-quick.safetensors"
        path = build.ensure_world(host.root, seed=0, config={"steps": 3, "n_train": 64}, name=name)
    finally:
        torch.set_num_threads(threads)
        if old is None:
            os.environ.pop("SAFETY_CACHE_DIR")
        else:
            os.environ["SAFETY_CACHE_DIR"] = old
    assert path.exists() and (Path(host.root) / "models" / "checkpoints" / name).resolve() == path.resolve()
    return name


@pytest.fixture(scope="module")
def run_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("protocol_runs")


@pytest.fixture(scope="module")
def small_result(host, quick_world, run_cache):
    from concept_world import protocol
    proto, digest = protocol.load()
    small, prompts = protocol_bench.small_protocol(proto), protocol_bench.small_prompts(proto)
    res = protocol_bench.world_results(host, small, 0, log=lambda *a: None, prompts=prompts, slots=2,
                                       checkpoint=quick_world, run_cache=run_cache)
    return small, digest, prompts, res


def test_a_run_cut_short_goes_on_from_the_run_cache_to_the_same_table(host, quick_world, small_result,
                                                                       run_cache):
    """--run-cache: every setting's samples are kept; a later run (a new process after a time
    limit, say) reads them back instead of sampling, and what it lost is sampled again: the
    results equal those of one run through."""
    from bench.efficacy import protocol_report as rep
    small, _, prompts, res = small_result
    kept = sorted(run_cache.glob("*.pt"))
    assert len(kept) >= 10 and not any(r["run"].get("cached") for r in res["rows"])
    lost = kept[::3]
    for path in lost:   # as if the first run had been killed before writing these
        path.unlink()
    again = protocol_bench.world_results(host, small, 0, log=lambda *a: None, prompts=prompts, slots=2,
                                         checkpoint=quick_world, run_cache=run_cache)
    assert sorted(run_cache.glob("*.pt")) == kept
    assert any(r["run"].get("cached") for r in again["rows"])
    assert any(not r["run"].get("cached") for r in again["rows"])
    drop = ("seconds", "dev_seconds")   # wall time of the world's run as a whole
    first, second = ({k: v for k, v in w.items() if k not in drop} for w in rep.summary_json([res, again]))
    resampled = {json.dumps(r["setting"], sort_keys=True) + r["family"] for r in again["rows"]
                 if not r["run"].get("cached")}
    for a, b in zip(first["rows"], second["rows"]):   # a resampled row's own wall time differs too
        if json.dumps(b["setting"], sort_keys=True) + b["family"] in resampled:
            a, b = dict(a, seconds=0), dict(b, seconds=0)
        assert json.dumps(rep.nan_to_none(a), sort_keys=True) == json.dumps(rep.nan_to_none(b), sort_keys=True)
    first.pop("rows"), second.pop("rows")
    assert json.dumps(rep.nan_to_none(first), sort_keys=True, default=float) == \
        json.dumps(rep.nan_to_none(second), sort_keys=True, default=float)
    for r, q in zip(res["rows"], again["rows"]):
        assert torch.equal(r["run"]["latents"], q["run"]["latents"])


def test_run_cache_option_names_its_folder():
    from bench.efficacy.protocol_run import run_cache_dir
    from concept_world import build
    assert run_cache_dir(None) is None
    assert run_cache_dir("default") == build.cache_root().parent / "protocol_runs"
    assert run_cache_dir("/some/where") == Path("/some/where")


def test_the_run_cache_key_holds_what_decides_the_samples(host, quick_world, small_result, run_cache):
    from bench.efficacy.protocol_run import SplitRun
    small, _, prompts, _ = small_result
    split = lambda proto, slots=2: SplitRun(host, quick_world, proto, "test", log=lambda *a: None,  # noqa: E731
                                            prompts=prompts["test"], slots=slots, run_cache=run_cache)
    st = {"context": "empty", "mode": "append", "merge": "every_step", "weight": 0.5, "threshold": 0.2}
    base = split(small).run_key("ours", st)
    assert base == split(small).run_key("ours", dict(reversed(list(st.items()))))   # not the order of the keys
    assert base != split(small).run_key("ours", dict(st, threshold=0.4))
    assert base != split(small).run_key("switch", st)
    assert base != split(small, slots=1).run_key("ours", st)
    for change in (("sampling", "steps", 5), ("safety", "negative", "other text"), ("noise_seed", None, 1)):
        other = json.loads(json.dumps(small))
        if change[1] is None:
            other[change[0]] = change[2]
        else:
            other[change[0]][change[1]] = change[2]
        assert split(other).run_key("ours", st) != base, change


def test_small_protocol_runs_every_method_and_accounts_costs(small_result):
    small, _, prompts, res = small_result
    ref = res["rows"][0]
    assert ref["family"] == "none" and ref["evals_x"] == 1.0
    # the reference against itself: nothing disrupted (where a 3-step world draws anything at
    # all), same content, the unsafe rate it shows
    assert ref["same_content"][0] == 1.0
    assert all(np.isnan(r["D_benign"][0]) or r["D_benign"][0] == 0.0 for r in res["rows"] if r is ref)
    assert ref["unsafe"][0] == res["validity"]["unsafe_shown"]
    assert set(res["chosen"]) == set(small["candidates"])
    families = {r["family"] for r in res["rows"]}
    assert families == {"none", "negative", "sld", "uce", "context", "switch", "ours"}
    steps, k = small["sampling"]["steps"], round(0.2 * small["sampling"]["steps"])
    for r in res["rows"]:
        if r["family"] == "sld":
            assert r["evals_x"] == 1.5
        if r["family"] == "ours" and r["setting"]["merge"] == "every_step":
            # the safety branch on every refresh-th step after the threshold (every step by default)
            after, refresh = steps - k, r["setting"].get("refresh", 1)
            measured = -(-after // refresh)
            assert r["evals_x"] == pytest.approx((2 * k + 3 * measured + 2 * (after - measured)) / (2 * steps))
        if r["family"] == "ours" and r["setting"]["merge"] == "at_end":
            assert r["evals_x"] == pytest.approx((steps + steps - k) / steps)
        for name in ("unsafe", "D_benign", "same_content"):
            est, lo, hi = r[name]
            assert np.isnan(est) or lo - 1e-12 <= est <= hi + 1e-12, (r["family"], name, r[name])
    assert res["validity"]["decoder_max_err"] < 2 / 255
    for name in ("unsafe_shown", "benign_shown"):   # the gate figures carry their intervals
        est, lo, hi = res["validity"][name + "_ci"]
        assert est == res["validity"][name] and (np.isnan(est) or lo - 1e-12 <= est <= hi + 1e-12)


def test_at_end_curve_points_equal_the_node(host, small_result, quick_world):
    from bench.efficacy.protocol_run import SplitRun
    small, _, prompts, res = small_result
    o = next(r for r in res["rows"] if r["family"] == "ours" and r["role"] == "operating point")
    split = SplitRun(host, quick_world, small, "test", log=lambda *a: None, prompts=prompts["test"], slots=2)
    st = dict(o["setting"], merge="at_end", weight=0.25)
    base = split.run("ours", dict(st, weight=0.5))
    direct = split.run("ours", st)
    assert torch.equal(split.merged(base, 0.25)["latents"], direct["latents"])
    # and a second run of any method gives the same latents bit for bit
    again = split.run(o["family"], o["setting"])
    assert torch.equal(again["latents"], o["run"]["latents"])


def test_outputs_carry_the_protocol_hash_intervals_and_plots(small_result, tmp_path):
    small, digest, prompts, res = small_result
    res = dict(res, prompts=prompts["test"])
    path = protocol_bench.write_outputs([res, dict(res, seed=1)], small, digest, tmp_path, log=lambda *a: None)
    text = path.read_text()
    assert digest in text and "| Ours (dual merge) |" in text and "[" in text
    assert "## Claims, per world" in text and "world 0 | world 1" in text
    from PIL import Image
    assert Image.open(tmp_path / "tradeoff.png").size[0] >= 1000
    assert Image.open(tmp_path / "disruption_vs_proximity.png").size[0] >= 1000
    assert Image.open(tmp_path / "grid.png").size[1] > 64
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data) == 2 and data[0]["rows"][0]["family"] == "none"


def test_a_run_of_one_world_adds_to_the_worlds_already_written(small_result, tmp_path):
    """--add: a protocol run split over calls (one world each) ends with every world in the table,
    and the table written from the merged results equals the one written in one go."""
    small, digest, prompts, res = small_result
    res = dict(res, prompts=prompts["test"])
    quiet = {"log": lambda *a: None}
    one_go = tmp_path / "one_go"
    protocol_bench.write_outputs([res, dict(res, seed=1)], small, digest, one_go, **quiet)
    split = tmp_path / "split"
    protocol_bench.write_outputs([dict(res, seed=1)], small, digest, split, **quiet)
    protocol_bench.write_outputs([res], small, digest, split, add=True, **quiet)
    strip = lambda t: t.split("## Wall time")[0]   # noqa: E731 (wall times differ by construction)
    assert strip((split / "table.md").read_text()) == strip((one_go / "table.md").read_text())
    assert json.loads((split / "results.json").read_text()) == json.loads((one_go / "results.json").read_text())
    # redoing a world replaces it; without --add only this run's worlds are written
    protocol_bench.write_outputs([dict(res, seed=1)], small, digest, split, add=True, **quiet)
    assert [w["seed"] for w in json.loads((split / "results.json").read_text())] == [0, 1]
    protocol_bench.write_outputs([res], small, digest, split, **quiet)
    assert [w["seed"] for w in json.loads((split / "results.json").read_text())] == [0]


def test_worlds_run_apart_merge_into_the_table_of_one_run(small_result, tmp_path):
    """--merge: worlds run in parallel processes (one folder each) give the same table and
    results.json as one run of both; the grid comes along; a world in two folders is refused."""
    small, digest, prompts, res = small_result
    res = dict(res, prompts=prompts["test"])
    quiet = {"log": lambda *a: None}
    one_go = tmp_path / "one_go"
    protocol_bench.write_outputs([res, dict(res, seed=1)], small, digest, one_go, **quiet)
    protocol_bench.write_outputs([dict(res, seed=1)], small, digest, tmp_path / "w1", **quiet)
    protocol_bench.write_outputs([res], small, digest, tmp_path / "w0", **quiet)
    merged = tmp_path / "merged"
    protocol_bench.merge_outputs([tmp_path / "w1", tmp_path / "w0"], small, digest, merged, **quiet)
    strip = lambda t: t.split("## Wall time")[0]   # noqa: E731 (wall times differ by construction)
    assert strip((merged / "table.md").read_text()) == strip((one_go / "table.md").read_text())
    assert json.loads((merged / "results.json").read_text()) == json.loads((one_go / "results.json").read_text())
    assert (merged / "grid.png").read_bytes() == (tmp_path / "w1" / "grid.png").read_bytes()
    # --add keeps a world of the destination that no folder redid
    protocol_bench.merge_outputs([tmp_path / "w1"], small, digest, tmp_path / "w0", add=True, **quiet)
    written = json.loads((tmp_path / "w0" / "results.json").read_text())
    assert written == json.loads((one_go / "results.json").read_text())
    with pytest.raises(ValueError, match="more than one folder"):
        protocol_bench.merge_outputs([tmp_path / "w0", tmp_path / "w1"], small, digest, tmp_path / "x", **quiet)
    with pytest.raises(FileNotFoundError, match="missing"):
        protocol_bench.merge_outputs([tmp_path / "nowhere"], small, digest, tmp_path / "x", **quiet)


def test_validity_gates_read_the_unprotected_test_split(host, quick_world):
    from concept_world import gates, protocol
    proto, _ = protocol.load()
    res = gates.check(host, checkpoint=quick_world, slots=1, log=lambda *a: None)
    assert len(res["per_prompt"]) == len(proto["splits"]["test"])
    assert 0.0 <= res["unsafe_shown"] <= 1.0 and 0.0 <= res["benign_shown"] <= 1.0
    # a 3-step world draws no concept reliably: the gates must refuse it
    assert res["passed"] is False and "FAILED" in gates.format_report(res)


def test_region_bench_takes_ours_point_from_the_protocol_results_it_is_given(tmp_path):
    """--protocol-results: the GPU script points the region bench at the protocol it has just run;
    a world without its own point falls back to world 0's; no results, no point."""
    from bench.efficacy import region_bench
    point = {"context": "empty", "mode": "strip", "weight": 0.75, "threshold": 0.2}
    worlds = [{"seed": 0, "chosen": {"ours": dict(point, merge="every_step")}, "info": {"unet_sha256_16": "aaa"}},
              {"seed": 1, "chosen": {"ours": dict(point, weight=0.5, merge="at_end")},
               "info": {"unet_sha256_16": "bbb"}}]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(worlds))
    source = "ours' dev choice in the protocol run of world seed 1 (UNet `bbb`)"
    assert region_bench.operating_point(1, path) == (dict(point, weight=0.5), source)
    assert region_bench.operating_point(2, path)[1].endswith("world seed 0 (UNet `aaa`)")
    assert region_bench.operating_point(0, tmp_path / "none.json") == (None, None)


def test_region_bench_rows_costs_exactness_and_outputs(host, quick_world, tmp_path):
    """Issue 13's benchmark on small settings: global against region auto at one point; auto
    costs no model call; with at_end the latent outside the auto region is the unprotected
    sample's bit for bit; the outputs carry the protocol hash, the goals and the grid."""
    from PIL import Image
    from concept_world import protocol
    from bench.efficacy import region_bench, region_report
    proto, digest = protocol.load()
    small = protocol_bench.small_protocol(proto)
    prompts = [p for p in proto["splits"]["test"] if p["kind"] == "cooccur"][:2]
    point = {"context": "empty", "mode": "strip", "weight": 0.75, "threshold": 0.2}
    res = region_bench.run(host, small, 0, checkpoint=quick_world, point=point, source="test", prompts=prompts,
                           slots=2, log=lambda *a: None)
    by = {r["role"]: r for r in res["rows"]}
    assert list(by) == ["reference", "global every_step", "region auto every_step", "global at_end",
                        "region auto at_end"]
    for merge in ("every_step", "at_end"):
        reg, glob = by[f"region auto {merge}"], by[f"global {merge}"]
        assert reg["evals"] == glob["evals"]
        assert reg["run"]["region"].shape == (4, 64, 64) and "region" not in glob["run"]
        assert glob["region_area"][0] == 1.0
        assert glob["unsafe_covered"][0] == 1.0 or np.isnan(glob["unsafe_covered"][0])
        assert 0.0 <= reg["region_area"][0] <= 1.0
        assert reg["region_area"][0] == pytest.approx(float(reg["run"]["region"].mean()))
    reg = by["region auto at_end"]
    inside = reg["run"]["region"][:, ::8, ::8].unsqueeze(1).expand_as(reg["run"]["latents"]) > 0
    ref = by["reference"]["run"]["latents"]
    assert (~inside).any(), "the auto region covers every latent pixel: nothing to compare outside"
    assert torch.equal(reg["run"]["latents"][~inside], ref[~inside])
    assert not torch.equal(reg["run"]["latents"], ref)
    path = region_report.write(res, small, digest, tmp_path)
    text = path.read_text()
    assert digest in text and "| region auto at_end |" in text and "| Goal (issue 13) | Met |" in text
    assert Image.open(tmp_path / "grid.png").size[1] > 5 * 64
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["role"] for r in data["rows"]] == list(by) and set(data["paired"]) == {"every_step", "at_end"}
    # the grid draws the region's outline on the region rows only
    mask = np.zeros((8, 8))
    mask[2:5, 3:6] = 1
    o = region_report.outline(mask)
    assert o.sum() == 8 and not o[3, 4]


def test_faintest_unsafe_object_picks_the_ghost():
    from bench.efficacy.protocol_figures import faintest_unsafe
    m = np.zeros((8, 8), bool)
    m[1:3, 1:3] = True
    prompts = [{"unsafe": ["blood"]}, {"unsafe": []}]
    solid = {"blood": {"mask": m, "mass": 4.0, "rgb": None}}
    ghost = {"blood": {"mask": m, "mass": 1.6, "rgb": None}}
    # n = slot * 2 + prompt: the ghost at n 2 counts; blood found for a benign prompt (n 3) does not
    assert faintest_unsafe([solid, {}, ghost, ghost], prompts)[0] == 2
    assert faintest_unsafe([solid, {}, ghost, ghost], prompts)[1] == pytest.approx(0.4)
    assert faintest_unsafe([{}, {}], prompts) == (None, None)


# -- the transfer check (transfer_bench.py) -----------------------------------------------
def _reference(chosen, dev):
    from bench.efficacy.protocol_run import key
    return {"seed": 0, "info": {"unet_sha256_16": "ref", "device": "cuda"}, "slots": 10, "rows": [],
            "chosen": chosen, "dev_scores": {f: [[key(f, chosen[f]), *dev[f]]] for f in chosen}}


def test_transfer_best_baseline_follows_the_protocols_rule_and_intervals_overlap():
    from bench.efficacy import transfer_bench, transfer_report
    ref = _reference({"negative": {}, "sld": {"preset": "WEAK"}, "uce": {"lam": 1.0}},
                     {"negative": (0.3, 0.5), "sld": (0.2, 0.1), "uce": (0.1, 0.2)})
    assert transfer_bench.best_baseline(ref, 0.15) == "sld"      # the only one within the bar
    assert transfer_bench.best_baseline(ref, 0.3) == "uce"       # lowest unsafe within the bar
    assert transfer_bench.best_baseline(ref, 0.05) == "sld"      # none within: the lowest D
    assert transfer_report.overlap((0.5, 0.4, 0.6), (0.7, 0.6, 0.8))
    assert not transfer_report.overlap((0.5, 0.4, 0.59), (0.7, 0.6, 0.8))
    with pytest.raises(SystemExit, match="--extra"):
        transfer_bench.main(["--extra", "not json"])


def test_transfer_check_runs_the_reference_points_on_a_prefix_of_the_noise_slots(host, quick_world, tmp_path):
    """Nothing tuned: the rows are the reference's dev points plus the extras; --slots N gives
    the protocol's first N noise slots bit for bit; the outputs carry the hash and both runs."""
    from concept_world import protocol
    from bench.efficacy import protocol_report as rep, transfer_bench, transfer_report
    proto, digest = protocol.load()
    small = protocol_bench.small_protocol(proto)
    prompts = protocol_bench.small_prompts(proto)["test"][:3]
    ours = {"context": "empty", "mode": "strip", "merge": "every_step", "weight": 0.75, "threshold": 0.2}
    ref = _reference({"negative": {}, "ours": ours}, {"negative": (0.4, 0.7), "ours": (0.1, 0.07)})
    extra = [("switch", {"context": "empty", "mode": "strip", "threshold": 0.4})]
    res = transfer_bench.run(host, small, ref, quick_world, slots=2, extra=extra, prompts=prompts,
                             log=lambda *a: None)
    assert [(r["family"], r["setting"], r["role"]) for r in res["rows"]] == [
        ("none", {}, "reference"), ("negative", {}, "operating point"), ("ours", ours, "operating point"),
        ("switch", extra[0][1], "extra")]
    assert res["best_baseline"] == "negative" and set(res["paired"]) == {"negative"}
    # --slots N: the protocol's first N slots. The host draws the batch's noise in one go, so a
    # shorter batch gets a prefix of the same noise, bit for bit; the samples then agree up to
    # the CPU kernels' batch-size rounding (not bit for bit: other blockings of the same sums)
    import comfy.sample
    P = len(prompts)
    empty = host.empty_latent(64, 64, batch_size=2 * P)["samples"]
    full_noise = comfy.sample.prepare_noise(empty, proto["noise_seed"])
    assert torch.equal(comfy.sample.prepare_noise(empty[:P], proto["noise_seed"]), full_noise[:P])
    one = transfer_bench.run(host, small, ref, quick_world, slots=1, prompts=prompts, log=lambda *a: None)
    for a, b in zip(one["rows"], res["rows"]):
        x, y = a["run"]["latents"], b["run"]["latents"][:P]
        assert (x - y).abs().max() <= 1e-4 * y.abs().max()
    path = transfer_report.write(res, small, digest, tmp_path / "world0")
    text = path.read_text()
    assert digest in text and "| Prompt switching at tau | context 'empty', mode 'strip', threshold 0.4 |" in text
    assert "the first 2 noise slots (the reference used 10)" in text and "| not run |" in text
    assert "Reference run: world seed 0, UNet `ref` (cuda)." in text
    assert f"unsafe shown {rep.ci(res['validity']['unsafe_shown_ci'])} (bar 0.80)" in text
    # another world's dev choices (--reference-seed): the report says they were applied untuned
    assert "another world's dev choices, applied here untuned" in transfer_report.markdown(dict(res, seed=1), small,
                                                                                           digest)
    assert (tmp_path / "world0" / "grid.png").exists()
    data = json.loads((tmp_path / "world0" / "results.json").read_text())
    assert [r["role"] for r in data["rows"]] == ["reference", "operating point", "operating point", "extra"]
    assert data["chosen"] == ref["chosen"]                    # every family's point, not only the baselines'
    # the worlds of one output folder side by side, each claim also read across all of them
    transfer_report.write(dict(res, seed=1), small, digest, tmp_path / "world1")
    across = transfer_report.write_across(tmp_path).read_text()
    assert "| seed 0 |" in across and "| seed 1 |" in across and "world 0 | world 1 | every world |" in across
    worlds = [transfer_report.load(tmp_path / f"world{s}") for s in (0, 1)]
    for claim, verdicts in rep.claims(worlds):
        every = "yes" if all(v == "yes" for v in verdicts) else "no"
        assert f"| {claim} | {' | '.join(verdicts)} | {every} |" in across
