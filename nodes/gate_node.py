"""SafetyPromptGate: applies the safety weight only to prompts the gate judges unsafe.

The decision is prompt_gate.gate_decision; this module only computes the parts the chosen
detector asks for: the similarity part embeds the prompt, the preset's unsafe terms (its
concepts) and the empty prompt with the CLIP the node receives (concept embeddings cached per
CLIP object and preset); the learned part scores the text with the shipped weights
(learned_gate.py, loaded on first use), on the head of the preset's category.
"""
import dataclasses
import weakref

import torch
from comfy_api.latest import io

from .latent_math import check_unit_interval, choice_error, first_error
from .preset_store import available_presets, get_preset, preset_names
from .learned_gate import get_detector, head_for_preset
from .prompt_gate import (DEFAULT_DETECTOR, DEFAULT_NODE_THRESHOLD, DEFAULT_THRESHOLD, DETECTORS, SIMILARITY_FLOOR,
                          gate_decision,
                          nearest_concept)

_concept_cache = {}  # (id(clip), preset name, terms) -> (weakref to clip, concepts, matrix, null vector)


_vector_kind = weakref.WeakKeyDictionary()  # clip -> which vector embed_text takes from it


def embed_text(clip, text):
    """One vector per text: the encoder's pooled output, or its mean token state if it has none
    (Qwen-Image, Lumina2, T5-based encoders...)."""
    cond, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
    vec = pooled[0] if pooled is not None else cond[0].mean(dim=0)
    _vector_kind[clip] = "pooled output" if pooled is not None else "mean-pooled token states (no pooled output)"
    return vec.detach().float().cpu()


def with_parts(decision, clip):
    """The reason names the parts used, and which vector of the encoder the similarity part used."""
    kind = _vector_kind.get(clip)
    parts = ["terms"]
    if decision.similarity is not None and kind is not None:
        parts.append(f"similarity on the {kind}")
    if decision.categories:   # the learned detector scored the prompt
        parts.append("learned")
    return dataclasses.replace(decision, reason=f"{decision.reason} [parts: {' + '.join(parts)}]")


def concept_embeddings(clip, preset):
    """(concept texts, their embeddings, the empty prompt's embedding), computed once per clip and preset."""
    key = (id(clip), preset.name, preset.unsafe_terms)
    hit = _concept_cache.get(key)
    if hit is not None and hit[0]() is clip:  # id() alone may be reused by a new object
        return hit[1:]
    concepts = list(dict.fromkeys(t.strip() for t in preset.unsafe_terms if t.strip()))
    if not concepts:
        raise ValueError(f"preset {preset.name!r} has no unsafe terms to compare the prompt with")
    matrix = torch.stack([embed_text(clip, c) for c in concepts])
    null = embed_text(clip, "")
    # The entry goes when its CLIP object does, so a long session does not collect stale encoders.
    _concept_cache[key] = (weakref.ref(clip, lambda _ref: _concept_cache.pop(key, None)), concepts, matrix, null)
    return concepts, matrix, null


def evaluate_gate(clip, text, preset, threshold=DEFAULT_THRESHOLD, similarity_floor=SIMILARITY_FLOOR,
                  detector=DEFAULT_DETECTOR):
    """The gate's GateDecision for a prompt with the parts `detector` names.
    preset: a preset name from the store, or a Preset (the benchmark passes its world's own)."""
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    if clip is None and detector in ("terms+similarity", "all"):
        raise ValueError("clip is None: the checkpoint has no text encoder; load one with a CLIP loader")
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {type(text).__name__}")
    if isinstance(preset, str):
        preset = get_preset(preset)
    terms = None if detector == "learned" else preset.unsafe_terms
    learned = None
    head = head_for_preset(preset.name)
    if detector in ("learned", "all") and text.strip():
        learned = get_detector().score(text)   # a missing or corrupt weights file: a ValueError naming it
    if detector in ("terms", "learned") or not text.strip():  # nothing to encode
        return gate_decision(text, terms, threshold, similarity_floor=similarity_floor, learned=learned,
                             learned_head=head)
    return decision_for_embedding(clip, text, embed_text(clip, text), preset, threshold, similarity_floor,
                                  learned=learned, learned_head=head)


def decision_for_embedding(clip, text, vector, preset, threshold=DEFAULT_THRESHOLD,
                           similarity_floor=SIMILARITY_FLOOR, learned=None, learned_head="any"):
    """The decision for a prompt whose embedding (embed_text) is already known: a benchmark
    scoring many prompts against several presets encodes each prompt once."""
    concepts, matrix, null = concept_embeddings(clip, preset)
    similarity, i = nearest_concept(vector, matrix, null)
    return with_parts(gate_decision(text, preset.unsafe_terms, threshold, similarity=similarity, concept=concepts[i],
                                    similarity_floor=similarity_floor, learned=learned, learned_head=learned_head),
                      clip)


class SafetyPromptGate(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="SafetyPromptGate",
            display_name="Safety Prompt Gate",
            category="safety",
            description="Passes the safety weight on only when the prompt is judged unsafe (a preset term, "
                        "the learned detector, or closeness to a term in the text encoder's space), so benign "
                        "prompts sample exactly as without the pack.",
            inputs=[
                io.Clip.Input("clip", tooltip="The text encoder of your model; the similarity is measured in "
                                              "its embedding space."),
                io.String.Input("text", multiline=True, dynamic_prompts=True,
                                tooltip="Your prompt: the same text you encode (connect one text node to both)."),
                io.Combo.Input("preset", options=preset_names(),
                               tooltip="Safety context preset whose unsafe terms are the concepts to detect."),
                io.Float.Input("threshold", default=DEFAULT_NODE_THRESHOLD, min=0.0, max=1.0, step=0.01,
                               tooltip="The prompt is unsafe when its score reaches this (a term match always "
                                       "does). 0 applies safety to every prompt. The default 0.75 keeps the "
                                       "learned part's false alarms on benign art prompts near 5%; 0.5 catches "
                                       "more and flags about 10-20% of them."),
                io.Float.Input("safety_weight", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="The safety weight to pass on when the prompt is unsafe."),
                io.Combo.Input("detector", options=list(DETECTORS), default=DEFAULT_DETECTOR,
                               tooltip="What judges the prompt. terms: the preset's unsafe terms (negations "
                                       "such as 'no blood' do not count). learned: a small classifier "
                                       "trained on I2P and COCO prompts, on the preset's category; its "
                                       "score is 0.5 at 10% false alarms on benign art-site prompts (the "
                                       "default: it flags fewest benign prompts, but misses many plainly "
                                       "worded unsafe ones). "
                                       "terms+similarity: terms, or closeness to a term in your text "
                                       "encoder's space (uncalibrated). all: any of the three (more recall, "
                                       "more false alarms)."),
            ],
            outputs=[
                # Ids must differ from the inputs'; the names users see are the display names.
                io.Float.Output("gated_weight", display_name="safety_weight", tooltip="The input weight when the prompt is unsafe, else 0.0 "
                                                         "(the sampler then returns exactly KSampler's result)."),
                io.Float.Output("score", display_name="score", tooltip=(
                    "0..1: the highest of its parts (1 for a term match, the similarity part, the "
                    "learned part's score on the preset's head).")),
                io.Boolean.Output("is_unsafe", display_name="is_unsafe", tooltip="Whether the prompt was judged unsafe."),
                io.String.Output("reason", display_name="reason", tooltip="Which term, concept or learned "
                                 "category triggered the gate (with the per-category scores), or why not."),
            ],
        )

    @classmethod
    def validate_inputs(cls, preset=None, detector=DEFAULT_DETECTOR):
        return first_error(choice_error("preset", preset, sorted(available_presets())),
                           choice_error("detector", detector, DETECTORS))

    @classmethod
    def execute(cls, clip, text, preset, threshold, safety_weight, detector=DEFAULT_DETECTOR) -> io.NodeOutput:
        w = check_unit_interval("safety_weight", safety_weight)
        d = evaluate_gate(clip, text, preset, threshold, detector=detector)
        return io.NodeOutput(w if d.is_unsafe else 0.0, float(d.score), bool(d.is_unsafe), d.reason)
