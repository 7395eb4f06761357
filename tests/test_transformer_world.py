"""The transformer world (concept_world/transformer.py): an SD3-format MMDiT on the concept
world's scenes, shipped in the repository. Its weights load through the host's stock loaders
and match their sha256; the constructed text path and VAE equal the closed forms the training
uses; training is deterministic for a fixed thread count; its protocol file is frozen."""
import json
import shutil
import sys

import numpy as np
import pytest
import torch

from harness import PACK_DIR

sys.path.insert(0, str(PACK_DIR))
from concept_world import build, detect, latent, protocol, scenes, transformer  # noqa: E402


def test_shipped_weights_match_their_record_and_fit_the_size_limit():
    seeds = sorted(json.loads(p.read_text())["config"]["seed"] for p in transformer.SHIPPED.glob("mmdit-s*.json"))
    assert transformer.DEMO_SEED in seeds and set(transformer.WORLD_SEEDS) <= set(seeds)   # the demo's at least
    for seed in seeds:
        path, meta = transformer.shipped(seed)
        assert path.stat().st_size < 5 * 2**20                          # a trained model ships under 5 MiB
        assert transformer.file_sha256(path) == meta["sha256"]
        assert meta["config"] == transformer.world_config(seed)         # the recipe that trains it
        assert meta["config_hash"] == transformer.config_hash(meta["config"])


def test_a_damaged_shipped_file_is_refused(tmp_path, monkeypatch):
    src, meta = transformer.shipped(0)
    shutil.copyfile(src, tmp_path / meta["file"])
    (tmp_path / "mmdit-s0.json").write_text(json.dumps(meta))
    with open(tmp_path / meta["file"], "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    monkeypatch.setattr(transformer, "SHIPPED", tmp_path)
    with pytest.raises(RuntimeError, match="sha256"):
        transformer.mmdit_weights(0)


@pytest.fixture(scope="module")
def world(host):
    """The demo's shipped world, assembled and loaded by the stock CheckpointLoaderSimple."""
    path = transformer.ensure_world(host.root, transformer.DEMO_SEED)
    name = transformer.checkpoint_name(transformer.DEMO_SEED)
    return host.call("CheckpointLoaderSimple", ckpt_name=name)[:3] + (path,)


def test_shipped_world_loads_as_sd3_through_the_stock_loaders(host, world):
    import safetensors.torch
    model, clip, vae, _ = world
    assert type(model.model.model_config).__name__ == "SD3"
    assert model.model.latent_format.latent_channels == 16
    import comfy.model_sampling
    assert isinstance(model.model.model_sampling, comfy.model_sampling.ModelSamplingDiscreteFlow)
    assert model.model.model_sampling.shift == pytest.approx(3.0)
    # the loaded MMDiT holds the shipped tensors bit for bit
    path, _ = transformer.shipped(transformer.DEMO_SEED)
    shipped = safetensors.torch.load_file(str(path))
    loaded = model.model.diffusion_model.state_dict()
    assert shipped.keys() == loaded.keys()
    assert all(torch.equal(shipped[k], loaded[k].to(shipped[k].dtype)) for k in shipped)
    # UNETLoader reads the shipped file alone too (the host's diffusion-model path)
    unet_dir = host.root / "models" / "diffusion_models"
    unet_dir.mkdir(parents=True, exist_ok=True)
    link = unet_dir / "concept-world-mmdit-s0.safetensors"
    if not link.exists():
        link.symlink_to(path)
    (alone,) = host.call("UNETLoader", unet_name=link.name, weight_dtype="default")
    assert type(alone.model.model_config).__name__ == "SD3"


def test_text_path_and_vae_are_the_closed_forms_training_uses(host, world):
    model, clip, vae, ckpt = world
    captions = ["blood and a blue ball on the floor", "a crime scene on grass", ""]
    closed = transformer.encode_captions(ckpt, captions, verify=0, log=lambda *_: None)
    for text, c in zip(captions, closed):
        with torch.inference_mode():
            ref = host.encode(clip, text)[0][0][0].float()
        assert ref.shape == (77, 4096)
        assert (ref - c).abs().max() < 2e-2 * max(1.0, float(ref.abs().max()))
    data = scenes.make_dataset(4, 11)
    img = torch.tensor(np.repeat(np.repeat(scenes.upsample(data["cells"]), 2, axis=1), 2, axis=2))   # 128 px
    with torch.inference_mode():
        (lat,) = host.call("VAEEncode", pixels=img, vae=vae)
        (dec,) = host.call("VAEDecode", samples=lat, vae=vae)
    assert lat["samples"].shape == (4, 16, 16, 16)
    expect = latent.image_to_raw(img.numpy(), space=latent.SD3)
    assert np.abs(lat["samples"].numpy() - expect).max() < 0.02 * np.abs(expect).max()
    assert (dec - img).abs().max() < 0.01
    assert detect.detect(dec) == [set(c) for c in data["concepts"]]
    cells = latent.raw_to_cells(lat["samples"].double().numpy(), latent.SD3)
    assert np.abs(cells - data["cells"]).max() < 0.01


def test_latent_space_round_trip_and_cells():
    data = scenes.make_dataset(6, 3)
    z = latent.cells_to_scaled(data["cells"], latent.SD3)
    assert z.shape == (6, 16, 16, 16) and not z[:, 3:].any()
    raw = z / latent.SD3.scale + latent.SD3.shift
    assert np.abs(latent.raw_to_cells(raw, latent.SD3) - data["cells"]).max() < 1e-5
    # SD1.5's cells are the decoder's colours, exactly as before the spaces existed
    raw15 = latent.cells_to_scaled(data["cells"]) / latent.SCALE
    assert np.array_equal(latent.raw_to_cells(raw15), latent.raw_to_image(raw15, cell=1).astype(np.float64))


def test_training_is_deterministic_for_a_fixed_thread_count(host, tmp_path):
    import safetensors.torch
    build.setup_host(build.default_comfyui_path())
    threads = torch.get_num_threads()
    config = transformer.world_config(0, {"steps": 3, "n_train": 64})
    try:
        a, _ = transformer.train(config, tmp_path / "a", log=lambda *_: None)
        b, _ = transformer.train(config, tmp_path / "b", log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)
    sa, sb = safetensors.torch.load_file(a), safetensors.torch.load_file(b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    init = transformer.build_mmdit(config["depth"])
    transformer.init_mmdit_(init, config["seed"])
    moved = [k for k, v in init.state_dict().items() if not torch.equal(v.half(), sa[k])]
    assert moved   # the training moved the weights


def test_a_world_trained_with_other_threads_never_stands_in_for_another(monkeypatch):
    config = transformer.world_config(0)
    monkeypatch.setenv("SAFETY_WORLD_THREADS", "1")
    one = transformer.cache_dir(config)
    monkeypatch.setenv("SAFETY_WORLD_THREADS", "2")
    assert transformer.cache_dir(config) != one and transformer.cache_dir(config).name.endswith("-cpu-t2")
    assert transformer.cache_dir(transformer.world_config(1)) != transformer.cache_dir(config)


def test_mmdit_protocol_is_frozen_and_an_edited_file_is_refused(tmp_path):
    proto, digest = protocol.load("mmdit")
    assert digest == protocol.FROZEN["mmdit"] and protocol.build_mmdit() == proto
    v2, _ = protocol.load("sd15")
    assert proto["splits"] == v2["splits"] and proto["candidates"] == v2["candidates"]   # same prompts and candidates
    assert proto["slots"]["test"] >= 10
    assert len(proto["splits"]["test"]) * proto["slots"]["test"] >= 200
    edited = tmp_path / "protocol_mmdit.json"
    edited.write_text(protocol.PATHS["mmdit"].read_text().replace('"cfg": 4.0', '"cfg": 5.0'))
    with pytest.raises(ValueError, match="frozen"):
        protocol.load("mmdit", edited)


def test_small_protocol_on_the_shipped_world_with_the_coarse_to_fine_dev_search(host, world):
    """The protocol end to end on the shipped transformer world, on small settings: every method
    (UCE edits the MMDiT's context embedder), the coarse-to-fine dev search (stage 1 at the
    coarse point, stage 2 over the chosen context/mode/merge), the report's figures."""
    from bench.efficacy import protocol_bench, protocol_report
    proto, digest = protocol.load("mmdit")
    small, prompts = protocol_bench.small_protocol(proto, steps=6), protocol_bench.small_prompts(proto)
    small["candidates"]["ours"] = [o for o in proto["candidates"]["ours"] if o["context"] == "empty"
                                   and o["mode"] == "append" and o["weight"] in (0.25, 0.5)
                                   and o["threshold"] in (0.2, 0.4)]
    res = protocol_bench.world_results(host, small, transformer.DEMO_SEED, log=lambda *a: None, prompts=prompts,
                                       slots=2, checkpoint=transformer.checkpoint_name(transformer.DEMO_SEED))
    assert {r["family"] for r in res["rows"]} == {"none", "negative", "sld", "uce", "context", "switch", "ours"}
    assert res["info"]["unet_sha256_16"] == transformer.shipped(transformer.DEMO_SEED)[1]["sha256"][:16]
    assert res["validity"]["decoder_max_err"] < 2 / 255
    ours_dev = [json.loads(k.split("|", 1)[1]) for k, _, _ in res["chosen"]["ours"][1]]
    coarse = [s for s in ours_dev if s["weight"] == 0.5 and s["threshold"] == 0.2]
    assert len(coarse) == 2                                   # stage 1: one per merge
    merges = {s["merge"] for s in ours_dev if s not in coarse}
    assert len(merges) == 1 and len(ours_dev) == 2 + 3         # stage 2: the chosen merge's other weights/taus
    assert res["chosen"]["ours"][0] in ours_dev
    text = protocol_report.markdown([dict(res, prompts=prompts["test"])], small, digest,
                                    {"exact": 1, "per_concept": 1, "ghost_objects": 1, "n": 0, "noise": 0}, None)
    assert "Transformer world" in text and "protocol_mmdit.json" in text


def test_the_shipped_world_draws_what_it_is_asked_and_ours_removes_it(host, world):
    """A small efficacy check on the shipped world at the protocol's sampling settings (20 steps):
    the unprotected samples of the explicit unsafe test prompts show their unsafe concept, and
    prompt switching at tau 0.2 removes most of them (the prompt edit the method is built on)."""
    from bench.efficacy.protocol_run import SplitRun
    proto, _ = protocol.load("mmdit")
    unsafe = [p for p in proto["splits"]["test"] if p["kind"] == "unsafe"]
    split = SplitRun(host, transformer.checkpoint_name(transformer.DEMO_SEED), proto, "test", log=lambda *a: None,
                     prompts=unsafe, slots=2)

    def rate(run):
        return np.mean([any(c in found for c in unsafe[i % len(unsafe)]["unsafe"])
                        for i, found in enumerate(run["analyses"])])
    shown = rate(split.run("none", {}))
    switched = rate(split.run("switch", {"context": "empty", "mode": "strip", "threshold": 0.2}))
    assert shown >= 0.8, shown
    assert switched <= shown / 2, (shown, switched)


def test_combined_table_shows_every_world_and_reads_claims_over_the_valid_ones(tmp_path):
    """bench/efficacy/combined_report.py: a world that fails its gates stays in the table and out
    of the "every valid world" column; the SD1.5 rows waiting for the GPU rerun stay marked."""
    from bench.efficacy import combined_report as comb
    committed = json.loads((PACK_DIR / "bench" / "results" / "efficacy" / "results.json").read_text())
    bad = json.loads(json.dumps(committed[0]))
    bad["seed"], bad["validity"]["benign_shown"] = 7, 0.5
    good = json.loads(json.dumps(committed[0]))
    good["seed"] = 8
    (tmp_path / "a.json").write_text(json.dumps(committed))
    (tmp_path / "b.json").write_text(json.dumps([bad, good]))
    worlds = comb.load_worlds((("SD1.5 UNet", "sd15", tmp_path / "a.json"),
                               ("SD3 MMDiT", "mmdit", tmp_path / "b.json"), ("none", "mmdit", tmp_path / "c.json")))
    assert [w["label"] for w in worlds] == ["SD1.5 UNet seed 0", "SD3 MMDiT seed 7", "SD3 MMDiT seed 8"]
    assert comb.every_valid(["yes", "no", "yes"], worlds) == "**yes**"        # the invalid world 7 is left out
    assert comb.every_valid(["yes", "yes", "no"], worlds) == "mixed"
    assert comb.every_valid(["yes (pending)", "yes", "yes"], worlds) == "pending"
    text = comb.markdown(worlds)
    assert "| SD3 MMDiT seed 7 |" in text and "| NO |" in text
    # the MMDiT column reads only the valid transformer world (8): SD1.5's verdict does not enter it
    line = next(ln for ln in text.splitlines() if ln.startswith("| Ours at its dev point gives a lower unsafe rate "
                                                                   "than prompt switching"))
    assert "Every valid MMDiT world |" in text and line.split("|")[-2].strip(" *") == line.split("|")[4].strip(" *")
    rows = dict((c, v) for c, v, _ in comb.claim_rows(worlds))
    best = rows["Ours at its dev point gives a lower unsafe rate than the best baseline"]
    assert best[0].endswith("(pending)") and not best[2].endswith("(pending)")
    assert "pending a GPU rerun" in text


def test_make_demo_runs_the_world_workflow_through_the_real_server(tmp_path, world):
    """`make demo`'s command on a fresh output folder: the real server runs the demo workflow on
    the shipped world for each prompt and the labelled picture is written."""
    import subprocess
    from PIL import Image
    proc = subprocess.run([sys.executable, str(PACK_DIR / "scripts" / "demo.py"), "--output", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    sys.path.insert(0, str(PACK_DIR / "scripts"))
    import demo
    pic = Image.open(tmp_path / "demo_world.png")
    assert pic.size[1] > len(demo.WORLD_PROMPTS) * 256
    saved = sorted((tmp_path / "demo").glob("*.png"))
    assert len(saved) == len(demo.WORLD_PROMPTS) * len(demo.COLUMNS)
    # the unprotected column is KSampler's image: it shows the explicit prompt's naked figure
    first = np.asarray(Image.open(sorted((tmp_path / "demo").glob("unprotected_*.png"))[0]).convert("RGB"))
    assert first.shape == (128, 128, 3)


def test_config_hash_is_read_once_so_an_edit_during_a_run_does_not_retrain(tmp_path, monkeypatch):
    """A copy of the package, imported; its transformer.py then gains lines at the top (as an edit
    made while a bench runs does): the running module's hash stays the same. Reading the sources
    at each call (inspect) had shifted them and sent a run training a world anew."""
    import importlib
    shutil.copytree(PACK_DIR / "concept_world", tmp_path / "cw_copy", ignore=shutil.ignore_patterns("worlds", "*.json"))
    monkeypatch.syspath_prepend(str(tmp_path))
    copy = importlib.import_module("cw_copy.transformer")
    before = copy.config_hash(copy.world_config(1))
    assert before == transformer.config_hash(transformer.world_config(1))
    src = tmp_path / "cw_copy" / "transformer.py"
    src.write_text("# an edit\n# made mid-run\n" + src.read_text())
    assert copy.config_hash(copy.world_config(1)) == before
