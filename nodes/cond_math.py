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


def _item_rows(value, item, batch):
    """Row `item` of a conditioning tensor laid out for a latent batch of `batch` (a batch-1
    tensor serves every item); None when its batch is laid out otherwise."""
    if not hasattr(value, "shape") or value.ndim == 0:
        return value
    if value.shape[0] == batch:
        return value[item]
    return value[0] if value.shape[0] == 1 else None


def _text_and_options(entry):
    """A conditioning entry as (text tensor, options): CONDITIONING's [tensor, dict], or the
    host's own form inside a guider (a dict whose text is under "cross_attn")."""
    if isinstance(entry, dict):
        return entry.get("cross_attn"), entry
    return entry[0], entry[1]


def same_text_items(positive, safe, batch):
    """Per latent-batch item: True where the safe branch's conditioning (safe_branch_conditioning's
    output, or the guider's copy of it) has exactly the positive's text, so the safety stream has
    nothing to change there."""
    if len(positive) != len(safe):
        return [False] * batch
    out = []
    for b in range(batch):
        same = True
        for (pt, po), (st, so) in zip(map(_text_and_options, positive), map(_text_and_options, safe)):
            for a, c in [(pt, st)] + [(po.get(k), so.get(k)) for k in TEXT_KEYS]:
                ra, rc = _item_rows(a, b, batch), _item_rows(c, b, batch)
                if a is None and c is None:
                    continue
                if ra is None or rc is None or not hasattr(ra, "shape") or ra.shape != rc.shape \
                        or not bool((ra == rc).all()):
                    same = False
        out.append(same)
    return out
