"""Plain unit tests of the content check's math (nodes/content.py and nodes/settings.py, no host)."""
import pytest
import torch

from pack_import import load_pure

ct = load_pure("content")
st = load_pure("settings")


def check(**over):
    return ct.ContentCheck(detector=None, decoder=None, **over)


def bench_module():
    """bench/efficacy/content_bench.py (the repository root on the path)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.efficacy import content_bench
    return content_bench


def addendum(version):
    """A frozen content addendum by its version name (v1 ... v8), sha256-checked."""
    content_bench = bench_module()
    return content_bench.load_addendum(content_bench.ROOT / "concept_world" / content_bench.ADDENDA[version][0])


def test_check_steps_start_at_the_later_of_tau_and_check_start_and_step_by_every():
    assert ct.check_steps(20, 0.0, check(check_start=0.3, check_every=2)) == [6, 8, 10, 12, 14, 16, 18]
    assert ct.check_steps(20, 0.5, check(check_start=0.3, check_every=3)) == [10, 13, 16, 19]
    assert ct.check_steps(10, 0.2, check(check_start=0.0, check_every=1)) == list(range(2, 10))
    assert ct.check_steps(10, 1.0, check()) == []


@pytest.mark.parametrize("field,value,name", [
    ("score_threshold", 1.5, "score_threshold"), ("check_start", -0.1, "check_start"),
    ("check_every", 0, "check_every"), ("check_every", 1.5, "check_every"), ("go_back", -1, "go_back"),
    ("grow", 65, "grow")])
def test_content_check_refuses_values_out_of_range_by_name(field, value, name):
    with pytest.raises(ValueError, match=name):
        check(**{field: value})


def test_decide_fires_at_the_first_check_over_the_threshold_and_goes_back_no_further_than_tau():
    c = check(score_threshold=0.5, go_back=3)
    ds = [ct.ItemDecision(), ct.ItemDecision()]
    ct.decide(ds, 6, [ct.ItemResult(0.2), ct.ItemResult(0.7, classes=("X",))], c, threshold_step=4)
    assert ds[0].fired_at is None and ds[0].score == pytest.approx(0.2)
    assert (ds[1].fired_at, ds[1].start, ds[1].classes) == (6, 4, ("X",))
    ct.decide([ds[0]], 10, [ct.ItemResult(0.5)], c, threshold_step=4)
    assert (ds[0].fired_at, ds[0].start, ds[0].checks) == (10, 7, 2)
    ct.decide(ds, 12, [ct.ItemResult(0.9), ct.ItemResult(0.9)], c, 4)   # fired items keep their first firing
    assert ds[0].fired_at == 10 and ds[1].fired_at == 6
    assert "fired at step 11" in ds[0].report(0) and "nothing fired" in ct.ItemDecision(checks=3).report(1)


def test_decide_refuses_a_score_outside_the_unit_interval():
    with pytest.raises(ValueError, match="score"):
        ct.decide([ct.ItemDecision()], 3, [ct.ItemResult(float("nan"))], check(), 0)


def test_boxes_become_a_mask_clipped_to_the_image_and_pool_to_the_latent_conservatively():
    m = ct.boxes_to_mask([(10, 20, 5, 4), (60, 60, 20, 20)], 64, 64)
    assert m.shape == (64, 64) and m[20:24, 10:15].eq(1).all() and m.sum() == 20 + 4 * 4
    lat = ct.latent_mask(m, (8, 8))
    assert lat.shape == (1, 1, 8, 8)
    # any covered pixel puts its latent pixel in the region: (10..14, 20..23) -> latent (1..1, 2..2)
    assert lat[0, 0, 2, 1] == 1 and lat[0, 0, 7, 7] == 1 and lat.sum() == 2
    assert torch.equal(ct.latent_mask(None, (4, 6)), torch.ones(1, 1, 4, 6))


def test_grow_dilates_by_whole_latent_pixels_and_item_masks_zero_the_items_that_did_not_fire():
    m = torch.zeros(1, 1, 8, 8)
    m[0, 0, 4, 4] = 1
    assert ct.grow_mask(m, 1).sum() == 9 and ct.grow_mask(m, 0) is m
    box = torch.zeros(64, 64)
    box[32:40, 32:40] = 1
    ds = [ct.ItemDecision(fired_at=5, start=5, mask=box), ct.ItemDecision()]
    out = ct.item_masks(ds, (2, 4, 8, 8), grow=1)
    assert out.shape == (2, 1, 8, 8) and out[1].sum() == 0 and out[0].sum() == 9


def test_a_clip_fires_when_any_frame_does_and_its_mask_is_the_union_of_the_firing_frames():
    left, right, top = torch.zeros(4, 4), torch.zeros(4, 4), torch.zeros(4, 4)
    left[:, :2], right[:, 2:], top[:1] = 1.0, 1.0, 1.0
    frames = [ct.ItemResult(0.1, top, ("A",)), ct.ItemResult(0.9, left, ("B",)), ct.ItemResult(0.6, right, ("C", "B")),
              ct.ItemResult(0.2, top), ct.ItemResult(0.3, left, ("A",)), ct.ItemResult(0.0, None)]
    clip0, clip1 = ct.clip_results(frames, 3, score_threshold=0.5)
    assert clip0.score == 0.9 and clip0.classes == ("B", "C")
    assert torch.equal(clip0.mask, torch.maximum(left, right))          # not frame 0's top row: it did not fire
    assert clip1.score == pytest.approx(0.3) and torch.equal(clip1.mask, left)   # nothing fired: its best frame
    (whole,) = ct.clip_results([ct.ItemResult(0.7, None), ct.ItemResult(0.8, left)], 2, 0.5)
    assert whole.mask is None                                           # a firing frame without a place: all
    with pytest.raises(ValueError, match="clips of 2 frames"):
        ct.clip_results(frames[:5], 2, 0.5)


def test_item_masks_of_a_video_latent_hold_one_mask_for_every_frame_of_a_clip():
    fired, quiet = ct.ItemDecision(fired_at=3, start=3), ct.ItemDecision()
    fired.mask = torch.zeros(32, 32)
    fired.mask[:8, :8] = 1.0
    masks = ct.item_masks([fired, quiet], (2, 16, 5, 4, 4), grow=0)
    assert masks.shape == (2, 1, 1, 4, 4)
    assert float(masks[0, 0, 0, 0, 0]) == 1.0 and float(masks[0].sum()) == 1.0 and float(masks[1].sum()) == 0.0
    assert ct.item_masks([fired], (1, 16, 4, 4), grow=0).shape == (1, 1, 4, 4)


def test_branch_difference_on_a_video_gives_one_latent_mask_per_clip():
    g = torch.Generator().manual_seed(0)
    user = torch.randn(2, 16, 3, 8, 8, generator=g)
    safe = user.clone()
    safe[0, :, 2, :4, :4] += 5.0                # clip 0 changes in one frame's corner only
    a, b = ct.BranchDifference(0.5).judge(user, safe)
    assert a.mask.shape == (8, 8) and float(a.mask[:4, :4].min()) == 1.0 and float(a.mask[4:, 4:].max()) == 0.0
    assert a.score > 0 and b.score == 0.0 and float(b.mask.sum()) == 0.0


def test_item_schedule_switches_each_item_on_at_its_own_noise_level():
    masks = torch.ones(3, 1, 2, 2)
    sched = ct.ItemSchedule(masks, [5.0, 2.0, None])
    assert sched.at(7.0) is None
    at5 = sched.at(5.0)
    assert at5[0].eq(1).all() and at5[1].eq(0).all() and at5[2].eq(0).all()
    assert sched.at(1.0)[:2].eq(1).all() and sched.at(0.0)[2].eq(0).all()


def test_settings_check_every_field_once_by_its_input_name():
    s = st.SafetySettings(0.5, 0.2)
    assert (s.weight, s.threshold, s.merge, s.refresh) == (0.5, 0.2, "every_step", 1)
    for kwargs, name in [(dict(weight=2), "safety_weight"), (dict(threshold=-1), "context_threshold"),
                         (dict(merge="later"), "merge"), (dict(refresh=0), "refresh"),
                         (dict(merge="at_end", refresh=2), "refresh"), (dict(region_mode="mask"), "region"),
                         (dict(region_threshold=3), "region_threshold"),
                         (dict(region_mode="auto", content=object()), "detector")]:
        with pytest.raises(ValueError, match=name):
            st.SafetySettings(**kwargs)
    with pytest.raises(Exception):
        s.weight = 0.3   # frozen
    assert s.replace(weight=0.0).weight == 0.0


def test_the_shipped_in_loop_detector_reproduces_its_held_out_figures_and_is_not_the_scorer():
    import json
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from concept_world import in_loop
    record = json.loads(in_loop.SHIPPED.with_suffix(".json").read_text())
    assert record["recipe"] == in_loop.RECIPE
    detector = in_loop.CellDetector()
    assert in_loop.heldout(detector.net) == record["heldout"]
    assert record["heldout"]["image_recall"] >= 0.9 and record["heldout"]["image_false_alarms"] <= 0.05
    assert record["recipe"]["heldout_seed"] != record["recipe"]["seed"]   # renderings training never saw


def test_same_text_items_compares_each_items_text_row_and_the_text_keys():
    cm = load_pure("cond_math")
    a = torch.randn(3, 4, 8)
    b = a.clone()
    b[1, 2, 0] += 1.0
    pooled = torch.randn(3, 8)
    assert cm.same_text_items([[a, {"pooled_output": pooled}]], [[b, {"pooled_output": pooled.clone()}]], 3) \
        == [True, False, True]
    other = pooled.clone()
    other[2] += 1.0
    assert cm.same_text_items([[a, {"pooled_output": pooled}]], [[a, {"pooled_output": other}]], 3) \
        == [True, True, False]
    one = torch.randn(1, 4, 8)    # a batch-1 conditioning serves every item
    assert cm.same_text_items([[one, {}]], [[one.clone(), {}]], 2) == [True, True]
    assert cm.same_text_items([[one, {}]], [[torch.randn(1, 4, 8), {}]], 2) == [False, False]
    assert cm.same_text_items([[one, {}]], [[torch.randn(1, 5, 8), {}]], 1) == [False]


def test_content_bench_v4_curve_rows_are_the_other_stage_one_candidates():
    """Addendum v4 (frozen) runs every stage-1 candidate on test as a curve row besides the dev choice."""
    content_bench = bench_module()
    add = addendum("v4")
    cands = content_bench.stage1(add)
    assert len(cands) == 6 and {(c["check_start"], c["score_threshold"]) for c in cands} == {
        (s, t) for s in (0.2, 0.4, 0.6) for t in (0.5, 0.8)}
    rows = content_bench.test_rows({"ours": {"merge": "every_step", "weight": 0.5}}, cands[2], cands)
    curve = [r for r in rows if r[3].startswith("curve")]
    assert [r[2] for r in curve] == [c for c in cands if c != cands[2]]
    assert sum(r[3].startswith("operating point (cell") for r in rows) == 1


def test_content_bench_v6_crosses_only_the_region_text():
    """Addendum v6 (frozen) keeps v5's check point and crosses the region text: the stripped prompt
    against the context alone with each of the world's empty-scene captions."""
    content_bench = bench_module()
    add = addendum("v6")
    cands = content_bench.stage1(add)
    assert [(c["mode"], c["context"]) for c in cands] == [
        ("strip", "empty"), ("replace", "an empty floor"), ("replace", "empty grass"), ("replace", "an empty sky")]
    assert {(c["check_start"], c["score_threshold"], c["weight"], c["merge"]) for c in cands} == {(0.6, 0.8, 1.0, "at_end")}
    assert add["worlds"] == [1, 2, 3] and "test_curve" not in add


def test_confirm_keeps_an_item_acting_only_if_the_last_step_fires_too_and_joins_both_masks():
    c = check(score_threshold=0.5, confirm=True)
    first = torch.zeros(4, 4)
    first[0, 0] = 1.0
    last = torch.zeros(4, 4)
    last[3, 3] = 1.0
    ds = [ct.ItemDecision(), ct.ItemDecision(), ct.ItemDecision(), ct.ItemDecision()]
    ct.decide(ds, 6, [ct.ItemResult(0.9, first, ("A",)), ct.ItemResult(0.9, first), ct.ItemResult(0.1),
                      ct.ItemResult(0.8, None)], c, threshold_step=2)
    # one result per item that fired, in order: items 0, 1 and 3
    ct.confirm(ds, [ct.ItemResult(0.7, last, ("B",)), ct.ItemResult(0.3, last), ct.ItemResult(0.6, last)], c)
    assert [d.acts for d in ds] == [True, False, False, True]
    assert ds[0].confirmed is True and ds[1].confirmed is False and ds[2].confirmed is None
    assert torch.equal(ds[0].mask, torch.maximum(first, last)) and ds[0].classes == ("A", "B")
    assert ds[3].mask is None                       # no place given at the first firing: the whole image
    assert "does not show it" in ds[1].report(1) and "safety from step" in ds[0].report(0)
    with pytest.raises(RuntimeError, match="returned 1 results for 3 items"):
        ct.confirm(ds, [ct.ItemResult(0.7)], c)
    with pytest.raises(ValueError, match="scores must lie in"):
        ct.confirm(ds, [ct.ItemResult(2.0)] * 3, c)


def test_confirm_is_a_boolean_and_needs_a_detector_that_sees_the_image():
    with pytest.raises(ValueError, match="confirm must be true or false"):
        check(confirm="yes")
    with pytest.raises(ValueError, match="branch-difference detector"):
        ct.ContentCheck(ct.BranchDifference(), None, confirm=True)
    assert check().confirm is False


def test_content_bench_v7_crosses_region_text_with_confirm_and_runs_fewer_baselines():
    content_bench = bench_module()
    add = addendum("v7")
    cands = content_bench.stage1(add)
    assert sorted((c["mode"], c["confirm"]) for c in cands) == [
        ("replace", False), ("replace", True), ("strip", False), ("strip", True)]
    assert {(c["check_start"], c["score_threshold"], c["grow"]) for c in cands} == {(0.6, 0.8, 4)}
    base = {f: {"weight": 0.5, "merge": "every_step"} for f in ("negative", "sld", "uce", "context", "switch", "ours")}
    rows = content_bench.test_rows(base, cands[0], (), add["test_families"])
    assert [(r[1], r[3]) for r in rows] == [
        ("none", "reference"), ("uce", "operating point"), ("switch", "operating point"),
        ("ours", "operating point"), ("content", "operating point (cell detector)"),
        ("content", "oracle (the scorer in the loop)")]
    assert len(content_bench.test_rows(base, cands[0])) == 10     # v1-v6: every baseline


def test_content_bench_v8_grows_the_mask_in_ascending_order_from_v7s_point():
    content_bench = bench_module()
    v7 = content_bench.stage1(addendum("v7"))
    cands = content_bench.stage1(addendum("v8"))
    assert [c["grow"] for c in cands] == [0, 1, 2, 4]     # a dev tie goes to the first: the smallest mask
    assert all(c["confirm"] and c["mode"] == "replace" and c["context"] == "an empty floor" for c in cands)
    assert cands[3] in v7                                 # grow 4 is v7's own candidate (the same run key)
