"""The safe branch's conditioning: the positive with its text swapped (pure, no host imports).

A CONDITIONING is a list of [tensor, dict] entries. The positive's dicts carry the model
inputs that are not text: FluxGuidance's `guidance`, a Wan I2V image (`concat_latent_image`,
`concat_mask`, `clip_vision_output`), ControlNet's `control`, `reference_latents`, area and
mask, IP2P's `concat_latent_image`, timestep ranges. The safe branch must receive all of them,
or it runs a different model input than the user's branch (another guidance, a blank image).
"""

# What describes the text tensor itself, so it always comes from the safety context (and is
# dropped where the safety context has none): the pooled text vector and the token mask.
TEXT_KEYS = ("pooled_output", "attention_mask")


def check_conditioning_list(name, cond):
    if not isinstance(cond, (list, tuple)) or len(cond) == 0:
        raise ValueError(f"{name} is empty: connect a CONDITIONING (e.g. from SafetyContextEncode)")
    for i, entry in enumerate(cond):
        if not isinstance(entry, (list, tuple)) or len(entry) != 2 or not isinstance(entry[1], dict):
            raise ValueError(f"{name} entry {i} is not a [tensor, dict] pair: expected a CONDITIONING")
    return cond


def safe_branch_conditioning(positive, safe_positive):
    """The positive with its text swapped for the safety context's.

    For each entry of `positive`: the entry's dict, without its TEXT_KEYS, updated with the
    matching safety entry's dict (so keys set explicitly on `safe_positive` win), paired with
    the safety entry's text tensor. `safe_positive` has one entry (used for every entry of the
    positive) or as many entries as the positive (paired in order).
    """
    check_conditioning_list("positive", positive)
    check_conditioning_list("safe_positive", safe_positive)
    if len(safe_positive) not in (1, len(positive)):
        raise ValueError(f"safe_positive has {len(safe_positive)} entries and positive {len(positive)}: "
                         "safe_positive needs one entry or one per entry of positive")
    out = []
    for i, (_, options) in enumerate(positive):
        safe_text, safe_options = safe_positive[i if len(safe_positive) > 1 else 0]
        merged = {k: v for k, v in options.items() if k not in TEXT_KEYS}
        merged.update(safe_options)
        out.append([safe_text, merged])
    return out
