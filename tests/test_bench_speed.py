"""Smoke test of the speed benchmark's core (bench/speed.py): its model-call counting and its
memory probe on the real host. Nothing here is timed; the benchmark itself is `make bench-speed`."""
import importlib.util

import pytest

from harness import PACK_DIR


def load_speed():
    # Loaded by path: putting the repository root on sys.path would expose its `nodes/` package
    # under the name of the host's own `nodes` module.
    spec = importlib.util.spec_from_file_location("bench_speed", PACK_DIR / "bench" / "speed.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


speed = load_speed()


def test_targets_follow_the_issue_formulas():
    cfg7 = lambda merge, tau: speed.target(dict(safety_weight=0.5, context_threshold=tau, merge=merge), 7.0, 20)
    assert cfg7("every_step", 0.0)[0] == (0.0, 1.5)           # 3 conds against 2
    assert cfg7("every_step", 0.4)[0] == (0.0, 1.3)           # k = 8 steps at 2 conds, 12 at 3
    assert speed.target(dict(safety_weight=0.5, context_threshold=0.0, merge="every_step"), 1.0, 20)[0] == (0.0, 2.0)
    assert cfg7("at_end", 0.0)[0] == (0.0, pytest.approx(2.05))
    assert cfg7("at_end", 0.4)[0] == (0.0, pytest.approx(1.65))  # (2N - k) / N + 5%
    assert speed.target(dict(safety_weight=0.0, context_threshold=0.4, merge="at_end"), 7.0, 20)[0] == (0.97, 1.03)
    assert speed.verdict((0.0, 1.5), 1.51) == "MISS" and speed.verdict((0.97, 1.03), 1.0) == "PASS"
    assert speed.pairs_for(0.1, 20, 15.0, 3) == 3 and speed.pairs_for(10.0, 20, 15.0, 3) == 1


def test_refresh_targets_and_configurations():
    ex = lambda r: dict(safety_weight=0.5, context_threshold=0.0, merge="every_step", refresh=r)
    assert speed.target(ex(2), 7.0, 20)[0] == (0.0, 1.25)             # the issue's targets
    assert speed.target(ex(2), 1.0, 20)[0] == (0.0, 1.5)
    assert speed.target(ex(4), 1.0, 20)[0] == (0.0, 1.25)
    assert speed.target(ex(3), 7.0, 20)[0] == (0.0, (40 + 7) / 40)    # steps 0, 3, ..., 18
    assert speed.target(dict(ex(2), context_threshold=0.2), 7.0, 20)[0] == (0.0, (40 + 8) / 40)
    labels = [lab for lab, _ in speed.dual_configs("refresh")]
    assert labels == ["every_step tau=0 w=0.5"] + [speed.refresh_label(r) for r in (2, 3, 4)]
    assert len(speed.dual_configs("all")) == 5 + 3 and len(speed.dual_configs("merge")) == 5
    with pytest.raises(ValueError, match="configs must be one of"):
        speed.dual_configs("fast")


def test_refresh_summary_line():
    def row(r, cfg, batch, ratio):
        return dict(extra=dict(safety_weight=0.5, context_threshold=0.0, merge="every_step", refresh=r),
                    cfg=cfg, batch=batch, size=64, ratio=ratio, cpu_ratio=ratio)
    rows = [row(1, 7.0, 4, 1.53), row(2, 7.0, 4, 1.26), row(1, 1.0, 4, 2.0), row(4, 1.0, 1, 1.24)]
    line = speed.refresh_summary(rows, 20)
    assert line.startswith("REFRESH SUMMARY")
    assert "cfg >1: r1 1.53-1.53x (floor 1.50x), r2 1.26-1.26x (floor 1.25x)" in line
    assert "cfg 1: r1 2.00-2.00x (floor 2.00x), r4 1.24-1.24x (floor 1.25x)" in line
    assert "64px cfg7 +2.0% (cpu +2.0%), 64px cfg1 +0.0%" in line


@pytest.fixture(scope="module")
def bench(host, tiny):
    return speed.Bench(host, steps=2, loaded=tiny)


@pytest.mark.parametrize("cfg, extra, conds_per_call", [
    (7.0, None, [2, 2]),                                                             # KSampler: cond + uncond
    (1.0, None, [1, 1]),                                                             # the host skips uncond at cfg 1
    (7.0, dict(safety_weight=0.5, context_threshold=0.0, merge="every_step"), [3, 3]),  # one batched call
    (1.0, dict(safety_weight=0.5, context_threshold=0.0, merge="every_step"), [2, 2]),
    (7.0, dict(safety_weight=0.5, context_threshold=0.5, merge="every_step"), [2, 3]),  # k = 1 of 2 steps
    (7.0, dict(safety_weight=0.5, context_threshold=0.0, merge="at_end"), [2, 2, 2, 2]),  # two full streams
    (7.0, dict(safety_weight=0.5, context_threshold=0.5, merge="at_end"), [2, 2, 2]),  # step 0 replayed
    (7.0, dict(safety_weight=0.0, context_threshold=0.5, merge="at_end"), [2, 2]),     # w 0: KSampler's path
    (7.0, dict(safety_weight=0.5, context_threshold=0.0, merge="every_step", refresh=2), [3, 2]),  # reuse
    (1.0, dict(safety_weight=0.5, context_threshold=0.0, merge="every_step", refresh=2), [2, 1]),
])
def test_model_calls_are_counted_on_the_real_model(bench, cfg, extra, conds_per_call):
    node = "KSampler" if extra is None else "DualLatentKSampler"
    r = bench.run(node, 64, 2, cfg, **(extra or {}))
    assert r["conds_per_call"] == conds_per_call
    assert r["calls"] == len(conds_per_call)
    assert r["rows"] == 2 * sum(conds_per_call)  # batch 2: every cond carries both latents
    assert r["model_s"] > 0 and r["wall"] >= r["model_s"]


def test_memory_probe_sees_the_extra_branch(bench):
    ks = bench.run("KSampler", 64, 1, 7.0, memory=True)
    dual = bench.run("DualLatentKSampler", 64, 1, 7.0, memory=True,
                     safety_weight=0.5, context_threshold=0.0, merge="every_step")
    assert ks["work"] > 0 and ks["total"] > ks["work"]
    # A third cond in the batch holds more activations at once than two.
    assert dual["work"] > ks["work"]
