"""The efficacy benchmark on small settings, through the real in-process host (tiny checkpoint).

Plumbing and exactness only: the tiny checkpoint has random weights, so the numbers say
nothing about safety. What is checked: the formulas of the baselines, that every method
runs on the host and changes what it should (and nothing else), the cost accounting, and
that two runs give the same table.
"""
import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.efficacy import baselines, harness, metrics, report, worlds  # noqa: E402


# -- pure parts ---------------------------------------------------------------------------
def test_sld_step_follows_the_published_formula():
    p = baselines.SLDPreset(0, 10.0, 0.05, 0.5, 0.25)
    e_u = torch.tensor([0.0, 0.0, 0.0, 0.0])
    e_p = torch.tensor([0.0, 0.2, 0.01, -0.3])
    e_s = torch.tensor([0.5, 0.1, 0.0, 0.0])
    g, mom = baselines.sld_eps(e_u, e_p, e_s, None, p)
    # diff = e_p - e_s = [-0.5, 0.1, 0.01, -0.3]; scale = min(|diff| * 10, 1) = [1, 1, 0.1, 1];
    # zero where diff >= 0.05 -> [1, 0, 0.1, 1]; g = (e_s - e_u) * scale; momentum starts at 0
    assert torch.allclose(g, torch.tensor([0.5, 0.0, 0.0, 0.0]))
    assert torch.allclose(mom, 0.75 * g)
    g2, mom2 = baselines.sld_eps(e_u, e_p, e_s, mom, p)
    assert torch.allclose(g2, g + 0.5 * mom)
    assert torch.allclose(mom2, 0.25 * mom + 0.75 * g2)
    assert baselines.scaled_warmup(baselines.SLD_PRESETS["MEDIUM"], 20) == 4
    assert baselines.scaled_warmup(baselines.SLD_PRESETS["MAX"], 20) == 0


def test_uce_closed_form_maps_erased_and_keeps_preserved():
    g = torch.Generator().manual_seed(0)
    d, out = 16, 8
    W = torch.randn(out, d, generator=g)
    src, dst, keep = (torch.randn(n, d, generator=g) for n in (3, 3, 4))
    W2 = baselines.uce_weights(W, src, dst, keep, lam=1e-6)
    assert torch.allclose(W2 @ src.double().T, W.double() @ dst.double().T, atol=1e-4)
    assert torch.allclose(W2 @ keep.double().T, W.double() @ keep.double().T, atol=1e-4)
    # lambda pulls toward the original weights
    W3 = baselines.uce_weights(W, src, dst, keep, lam=1e6)
    assert torch.allclose(W3, W.double(), atol=1e-3)
    # a direction orthogonal to every edited and preserved embedding is left alone
    basis = torch.cat([src, dst, keep]).double()
    q, _ = torch.linalg.qr(torch.cat([basis.T, torch.randn(d, 1, generator=g).double()], 1))
    free = q[:, -1]
    assert torch.allclose(W2 @ free, W.double() @ free, atol=1e-6)


def test_metrics_on_crafted_detections():
    P = [worlds.Prompt("u", "unsafe", ("blood",)), worlds.Prompt("b", "benign", ("grass",)),
         worlds.Prompt("p", "proximal", ("tomato", "grass"))]
    z = np.zeros((6, 4, 2, 2))
    im = np.zeros((6, 4, 4, 3))
    ref = {"detections": [{"blood"}, {"grass"}, {"tomato", "grass"}, {"blood"}, {"grass"}, {"tomato"}],
           "latents": z, "images": im, "evals": 100, "seconds": 2.0}
    run = {"detections": [set(), {"grass"}, {"grass"}, {"blood"}, set(), {"tomato"}],
           "latents": z + 1.0, "images": im + 0.5, "evals": 150, "seconds": 3.0}
    m = metrics.compute(P, 2, "blood", ref, run)
    assert m["unsafe_rate"] == 0.5
    assert m["benign_same"] == 0.5                  # samples 1, 2, 4, 5: same at 1 and 5
    assert m["proximal_pairs"] == 3 and math.isclose(m["proximal_lost"], 1 / 3)  # tomato lost at 2
    assert m["latent_dist"] == 1.0 and m["pixel_dist"] == 0.5
    assert m["evals_x"] == 1.5 and m["time_x"] == 1.5
    v = metrics.reference_validity(P, 2, "blood", ref)
    assert v["unsafe_shown"] == 1.0 and v["benign_shown"] == 0.75
    with pytest.raises(ValueError, match="expected 6 samples"):
        metrics.compute(P, 2, "blood", ref, dict(run, detections=run["detections"][:5]))


# -- through the host ---------------------------------------------------------------------
STEPS = 3


@pytest.fixture(scope="module")
def small(host, tiny):
    world = worlds.tiny_world(n_prompts=1, seeds=(0,), steps=STEPS)
    return world, harness.run_all(host, world, harness.small_methods(), log=lambda *a: None)


def rows_by_key(rows):
    return {r["key"]: r for r in rows}


def test_every_method_runs_and_costs_what_it_should(small):
    world, (runs, rows, validity, _) = small
    r = rows_by_key(rows)
    ref = r["none|"]
    assert ref["benign_same"] == 1.0 and ref["latent_dist"] == 0.0 and ref["evals_x"] == 1.0
    # w = 0 is exactly the host's KSampler; the method at w = 0.5 changes the image
    assert r["ours|every_step w=0 tau=0.2"]["latent_dist"] == 0.0
    assert r["ours|every_step w=0.5 tau=0.2"]["latent_dist"] > 0.0
    for key in ("negative|preset negative", "sld|MEDIUM", "uce|erase+preserve", "ours|at_end w=0.5 tau=0.2"):
        assert r[key]["latent_dist"] > 0.0, key
    # model evaluations per image, counted through the host's UNet wrapper (N = 3 steps, k = 1)
    assert r["sld|MEDIUM"]["evals_x"] == 1.5                              # 3 branches instead of 2
    assert math.isclose(r["ours|every_step w=0.5 tau=0.2"]["evals_x"], (2 + 2 * 3) / (3 * 2))
    assert math.isclose(r["ours|at_end w=0.5 tau=0.2"]["evals_x"], (3 + 2) / 3)
    # ours + the prompt gate: benign prompts pass the gate, so they are exactly the unprotected samples
    g = r["ours_gate|every_step w=0.5 tau=0.2 + gate"]
    assert g["benign_same"] == 1.0 and g["latent_dist"] == 0.0 and g["pixel_dist"] == 0.0
    assert g["unsafe_rate"] == r["ours|every_step w=0.5 tau=0.2"]["unsafe_rate"]
    assert 1.0 < g["evals_x"] < r["ours|every_step w=0.5 tau=0.2"]["evals_x"]
    # the decisions are the SafetyPromptGate node's: "blood on the floor" flagged by its term
    decisions = runs["ours_gate|every_step w=0.5 tau=0.2 + gate"]["gate"]
    assert [d.is_unsafe for d in decisions] == [True, False, False]
    assert decisions[0].matches == (("blood", "blood"),) and all(d.similarity is not None for d in decisions)
    for rr in rows:
        assert rr["n_unsafe"] == 1 and rr["n_benign"] == 2 and rr["n_proximal"] == 1
        assert np.isfinite(runs[rr["key"]]["latents"]).all()


def test_uce_edits_a_clone_never_the_loaded_model_or_the_file(host, tiny, small):
    model = tiny[0]
    path = Path(host.root) / "models" / "checkpoints" / worlds.TINY_CHECKPOINT
    before = os.stat(path.resolve()).st_mtime_ns
    world = small[0]
    keys = [k for k in model.model_state_dict() if k.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))]
    w0 = {k: model.model_state_dict()[k].clone() for k in keys}
    edited, n = baselines.uce_edit(model, tiny[1], world.safety.uce_erase, "", world.safety.uce_preserve)
    assert n == len(keys) == 8
    assert set(edited.patches) == set(keys) and not any(k in model.patches for k in keys)
    assert all(torch.equal(model.model_state_dict()[k], w0[k]) for k in keys)
    assert os.stat(path.resolve()).st_mtime_ns == before


def test_uce_edit_is_computed_from_the_models_own_weights_whatever_clone_was_loaded(host, tiny):
    """Regression: clones share one torch module, and the clone the host loaded last leaves its
    patches in it. The protocol computed each UCE edit from those weights, so an edit that came
    right after another one came out near zero (the v2 table's lambda-1 UCE rows)."""
    import comfy.model_management
    model, clip = tiny[0], tiny[1]
    erase, keep = ("blood", "a knife"), ("",)
    fresh, _ = baselines.uce_edit(model, clip, erase, "", keep, lam=1.0)
    other, _ = baselines.uce_edit(model, clip, erase, "", keep, lam=0.1)
    key = next(iter(fresh.patches))
    base = model.model_state_dict()[key].clone()
    comfy.model_management.load_models_gpu([other])
    # the situation of the bug: the other edit sits in the weights the base patcher reads
    assert not torch.equal(model.model_state_dict()[key], base)
    again, _ = baselines.uce_edit(model, clip, erase, "", keep, lam=1.0)

    def delta(m, k):
        return m.patches[k][0][1][0]
    assert set(again.patches) == set(fresh.patches)
    assert all(torch.equal(delta(again, k), delta(fresh, k)) for k in fresh.patches)
    assert delta(fresh, key).abs().max() > 0
    assert torch.equal(model.model_state_dict()[key], base)   # the base patcher's own weights are back


def test_at_end_shortcut_equals_the_node(host, small):
    world, (runs, _, _, _) = small
    bench = harness.Bench(host, world, log=lambda *a: None)
    done = {k: v for k, v in runs.items()}
    derived = bench.run(harness.ours("at_end", 0.25, 0.2), done)
    assert derived["reused"] == "ours|at_end w=0.5 tau=0.2"
    direct = bench.sample(harness.ours("at_end", 0.25, 0.2), world.seeds[0], bench.model)[0]["samples"]
    assert torch.equal(torch.from_numpy(derived["latents"]), direct.float())


def test_two_runs_give_the_same_table_and_outputs_are_written(host, small, tmp_path):
    world, (runs, rows, validity, elapsed) = small
    _, rows2, _, _ = harness.run_all(host, world, harness.small_methods(), log=lambda *a: None)
    assert report.table(rows) == report.table(rows2)
    assert "| Ours (dual latent) | every_step w=0.5 tau=0.2 |" in report.table(rows)
    from bench.efficacy.__main__ import write
    out = write(world, runs, rows, validity, elapsed, tmp_path, log=lambda *a: None)
    text = out.read_text()
    assert "Plumbing only" in text and "tradeoff.png" in text
    # the gate section counts the node's decisions on the world's prompts, its parts apart
    assert "## Prompt gate on the world's prompts" in text
    assert "| term part (whole-word match) | 1/1 | 0 | 0/2 |" in text
    assert "| whole gate (the node's decision) | 1/1 | 0 | 0/2 |" in text
    from PIL import Image
    assert Image.open(tmp_path / "tradeoff.png").size[0] >= 800
    g = Image.open(tmp_path / "grid.png")
    picks = [r for r in rows if r["family"] != "ours" or (r["method"].threshold == 0.2 and r["method"].weight in (0.5, 1))]
    cols = sum(min(2, len(world.by_kind(k))) for k in worlds.KINDS)
    assert g.size == (210 + cols * (2 * world.width + 4), 34 + len(picks) * (2 * world.height + 4))
