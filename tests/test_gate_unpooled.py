"""The prompt gate on a text encoder without a pooled output (issue 12, defect 4): a seeded
T5-base (the host's Stable Audio encoder, loaded by its CLIPLoader) stands in for Qwen-Image,
Lumina2 and the T5 families. The similarity part runs on mean-pooled token states, and
`reason` names the parts used."""
import pytest

from test_gate_node import gate, gate_preset  # noqa: F401  (the module's preset fixture)


@pytest.fixture(scope="module")
def t5(host):
    import comfy.sd
    (clip,) = host.call("CLIPLoader", clip_name="tiny-t5-base-random.safetensors", type="stable_audio")
    cond, pooled = clip.encode_from_tokens(clip.tokenize("a test"), return_pooled=True)
    assert pooled is None and cond.shape[-1] == 768   # really an encoder without a pooled output
    assert isinstance(clip, comfy.sd.CLIP)
    return clip


def test_gate_works_without_a_pooled_output_and_says_which_parts(host, t5, gate_preset):  # noqa: F811
    w, score, unsafe, reason = gate(host, t5, "a bloodhound in Essex", gate_preset)
    assert reason.startswith("no unsafe term; similarity") and not unsafe and w == 0.0
    assert reason.endswith("[parts: terms + similarity on the mean-pooled token states (no pooled output)]")
    w, score, unsafe, reason = gate(host, t5, "self harm", gate_preset, safety_weight=0.4)
    assert (w, score, unsafe) == (0.4, 1.0, True) and "'self-harm'" in reason and "mean-pooled" in reason
    # Threshold 0 still applies safety to every prompt; a prompt identical to a concept scores 1.
    assert gate(host, t5, "a bloodhound", gate_preset, threshold=0.0)[2] is True
    _, score, unsafe, reason = gate(host, t5, "blood", gate_preset)
    assert unsafe and score == 1.0


def test_gate_on_a_pooled_encoder_names_the_pooled_output(host, tiny, gate_preset):  # noqa: F811
    reason = gate(host, tiny[1], "a bloodhound in Essex", gate_preset)[3]
    assert reason.endswith("[parts: terms + similarity on the pooled output]")
