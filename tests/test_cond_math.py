"""Plain unit tests of the safe branch's conditioning rule (no host)."""
import pytest
import torch

from pack_import import load_pure

cm = load_pure("cond_math")


def t(*shape, v=0.0):
    return torch.full(shape, v)


def test_safe_branch_is_the_positive_with_its_text_swapped():
    image = t(1, 16, 2, 8, 8, v=3.0)
    positive = [[t(1, 7, 32, v=1.0), {"pooled_output": t(1, 8, v=1.0), "guidance": 2.5, "concat_latent_image": image,
                                      "attention_mask": torch.ones(1, 7, dtype=torch.long)}]]
    safe = [[t(1, 12, 32, v=2.0), {"pooled_output": t(1, 8, v=2.0)}]]
    (entry,) = cm.safe_branch_conditioning(positive, safe)
    assert entry[0] is safe[0][0]
    assert entry[1]["pooled_output"] is safe[0][1]["pooled_output"]
    assert entry[1]["guidance"] == 2.5 and entry[1]["concat_latent_image"] is image
    # The positive's token mask describes the positive's text: it never travels with the safe text.
    assert "attention_mask" not in entry[1]
    # Inputs are not modified.
    assert positive[0][1]["attention_mask"].shape == (1, 7) and set(safe[0][1]) == {"pooled_output"}


def test_text_keys_missing_from_the_safety_context_are_dropped():
    positive = [[t(1, 7, 32), {"pooled_output": t(1, 8), "guidance": 3.5}]]
    (entry,) = cm.safe_branch_conditioning(positive, [[t(1, 5, 32), {}]])
    assert entry[1] == {"guidance": 3.5}


def test_keys_set_on_the_safety_context_win():
    positive = [[t(1, 7, 32), {"guidance": 3.5, "strength": 1.0}]]
    (entry,) = cm.safe_branch_conditioning(positive, [[t(1, 5, 32), {"guidance": 1.0}]])
    assert entry[1] == {"guidance": 1.0, "strength": 1.0}


def test_one_safety_entry_serves_every_positive_entry_and_equal_counts_pair_in_order():
    positive = [[t(1, 7, 32), {"area": (8, 8, 0, 0)}], [t(1, 7, 32), {"area": (8, 8, 0, 8)}]]
    one = [[t(1, 5, 32, v=2.0), {}]]
    out = cm.safe_branch_conditioning(positive, one)
    assert [e[1]["area"] for e in out] == [(8, 8, 0, 0), (8, 8, 0, 8)]
    assert all(e[0] is one[0][0] for e in out)
    two = [[t(1, 5, 32, v=2.0), {}], [t(1, 5, 32, v=4.0), {}]]
    out = cm.safe_branch_conditioning(positive, two)
    assert out[0][0] is two[0][0] and out[1][0] is two[1][0]


@pytest.mark.parametrize("positive,safe,match", [
    ([], [[t(1, 5, 32), {}]], "positive is empty"),
    ([[t(1, 5, 32), {}]], [], "safe_positive is empty"),
    ([[t(1, 5, 32), {}]], [t(1, 5, 32)], "safe_positive entry 0 is not a"),
    ([[t(1, 5, 32), {}]] * 3, [[t(1, 5, 32), {}]] * 2, "safe_positive has 2 entries and positive 3"),
])
def test_bad_conditioning_is_named(positive, safe, match):
    with pytest.raises(ValueError, match=match):
        cm.safe_branch_conditioning(positive, safe)
