"""The method's nodes through the real HTTP server: schema, graphs, bad input, Cancel."""
import copy
import threading
import time

import pytest

from harness import output_images

GRAPH = {
    "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15-random.safetensors"}},
    "2": {"class_type": "SafetyContextEncode", "inputs": {"clip": ["1", 1], "text": "a naked man in a park",
                                                           "preset": "sexual", "mode": "append"}},
    "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
    "4": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "5": {"class_type": "DualLatentKSampler", "inputs": {
        "model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0], "safe_positive": ["2", 1],
        "latent_image": ["4", 0], "seed": 1, "steps": 6, "cfg": 7.0, "sampler_name": "euler",
        "scheduler": "normal", "denoise": 1.0, "safety_weight": 0.5, "context_threshold": 0.2,
        "merge": "at_end"}},
    "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
    "7": {"class_type": "SaveImage", "inputs": {"images": ["6", 0], "filename_prefix": "method/safe"}},
}


def graph(**changes):
    g = copy.deepcopy(GRAPH)
    for key, value in changes.items():
        node, field = key.split("__")
        g[node]["inputs"][field] = value
    return g


def test_object_info_has_the_contracted_interface(server):
    info = server.get("/object_info")
    enc = info["SafetyContextEncode"]
    assert list(enc["input"]["required"]) == ["clip", "text", "preset", "mode"]
    assert list(enc["input"]["optional"]) == ["extra_context"]
    assert enc["output_name"] == ["positive", "safe_positive", "safe_text"]
    assert "sexual" in enc["input"]["required"]["preset"][1]["options"] or "sexual" in enc["input"]["required"]["preset"][0]
    ks = info["DualLatentKSampler"]
    assert list(ks["input"]["required"]) == ["model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive",
                                             "negative", "safe_positive", "latent_image", "denoise", "safety_weight",
                                             "context_threshold", "merge"]
    assert list(ks["input"]["optional"]) == ["refresh", "region", "region_mode", "region_threshold", "detector"]
    assert ks["input"]["optional"]["region"][0] == "MASK"
    assert ks["input"]["optional"]["detector"][0] == "SAFETY_DETECTOR"
    assert ks["output_name"] == ["latent", "user_latent", "safe_latent", "region", "report"]
    assert ks["output"] == ["LATENT", "LATENT", "LATENT", "MASK", "STRING"]
    g = info["SafetyDualGuider"]
    assert list(g["input"]["required"]) == ["model", "positive", "negative", "safe_positive", "cfg", "safety_weight",
                                            "context_threshold"]
    assert list(g["input"]["optional"]) == ["refresh", "full_sigmas", "region", "region_mode", "region_threshold",
                                            "detector"]
    assert g["output"] == ["GUIDER"]
    adv, host_adv = info["DualLatentKSamplerAdvanced"], info["KSamplerAdvanced"]
    # KSamplerAdvanced's inputs in its order, the safety context after the conditionings, ours last.
    ours = ["safety_weight", "context_threshold", "merge"]
    expected = list(host_adv["input"]["required"])
    expected.insert(expected.index("negative") + 1, "safe_positive")
    assert list(adv["input"]["required"]) == expected + ours
    assert list(adv["input"]["optional"]) == ["detector"]
    assert adv["output_name"] == ["latent", "user_latent", "safe_latent", "region", "report"]
    det = info["SafetyDetectorNudeNet"]
    assert list(det["input"]["required"]) == ["vae", "classes", "score_threshold", "check_start", "check_every",
                                              "go_back", "grow"]
    assert list(det["input"]["optional"]) == ["confirm"] and det["input"]["optional"]["confirm"][1]["default"] is True
    assert det["output"] == ["SAFETY_DETECTOR"]
    for node in ("SafetyContextEncode", "DualLatentKSampler", "DualLatentKSamplerAdvanced", "SafetyDualGuider",
                 "SafetyDetectorNudeNet"):
        assert info[node]["category"] == "safety"
        for name, spec in {**info[node]["input"]["required"], **info[node]["input"].get("optional", {})}.items():
            assert spec[1].get("tooltip"), (node, name)
        assert all(info[node]["output_tooltips"]), node


def test_graph_runs_and_writes_an_image(server):
    entry = server.run(GRAPH)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert len(output_images(entry)) == 1


@pytest.mark.parametrize("key,value,input_name", [
    ("5__safety_weight", 1.5, "safety_weight"),
    ("5__context_threshold", -0.5, "context_threshold"),
    ("2__preset", "no-such-preset", "preset"),
    ("2__mode", "rewrite", "mode"),
    ("5__merge", "sometimes", "merge"),
    ("5__region_mode", "sometimes", "region_mode"),
    ("5__region_threshold", 1.5, "region_threshold"),
])
def test_bad_values_get_400_naming_the_input(server, key, value, input_name):
    status, body = server.post_prompt(graph(**{key: value}))
    assert status == 400
    errs = body["node_errors"][key.split("__")[0]]["errors"]
    assert any(e["extra_info"].get("input_name") == input_name for e in errs), errs


def test_missing_safe_positive_gets_400_and_runtime_errors_do_not_stop_the_server(server):
    g = graph()
    del g["5"]["inputs"]["safe_positive"]
    status, body = server.post_prompt(g)
    assert status == 400 and "safe_positive" in str(body["node_errors"]["5"])
    # An error at run time (empty context in replace mode) fails that prompt, names the cause...
    bad = graph(**{"2__mode": "replace", "2__preset": "sexual"})
    bad["2"]["inputs"]["extra_context"] = ""
    entry = server.run(bad)
    assert entry["status"]["status_str"] == "success"  # the preset has a context: replace is fine
    # ...and the server serves the next prompt.
    assert server.run(GRAPH)["status"]["status_str"] == "success"


def test_cancel_over_http_then_next_prompt_runs(server):
    long = graph(**{"5__steps": 400, "5__seed": 99})
    status, body = server.post_prompt(long)
    assert status == 200
    pid = body["prompt_id"]
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until it is running
        q = server.get("/queue")
        if any(item[1] == pid for item in q["queue_running"]):
            break
        time.sleep(0.2)
    time.sleep(1.0)
    t0 = time.time()
    server.request("POST", "/interrupt", {})
    entry = server.wait(pid, timeout=120)
    assert time.time() - t0 < 30
    assert entry["status"]["status_str"] == "error"
    assert any(m[0] == "execution_interrupted" for m in entry["status"]["messages"])
    assert server.run(GRAPH)["status"]["status_str"] == "success"
