"""The dynamic prompt gate: decides whether a prompt needs the safety context at all.

Pure Python and torch, nothing from the host (the node in gate_node.py does the encoding).

Score, for a prompt P, a preset's unsafe terms T and threshold t in [0, 1]:

    term_score = 1 if any term of T occurs in P as a whole word or phrase, else 0
    similarity = max over concepts c of cos(e(P) - e0, e(c) - e0)
                 e: the host text encoder's pooled embedding; e0: e("") (the empty prompt),
                 subtracted because every prompt shares a large common direction in CLIP
                 spaces, which would make all cosines high
    sim_score  = clamp((similarity - floor) / (1 - floor), 0, 1)     (floor: SIMILARITY_FLOOR)
    score      = max(term_score, sim_score)
    unsafe     = prompt not empty and (term_score == 1 or score >= t)

So a term match alone makes a prompt unsafe, similarity only counts above the floor, and
t = 0 applies safety to every non-empty prompt. The floor is not calibrated here (the test
checkpoint's text encoder is random); calibrate it on real encoder weights.

Term matching is terms.py (the pack's one matcher): whole words with simple inflections,
negated matches ("no blood") and benign compounds ("killer whale") do not count.
"""
import math
from dataclasses import dataclass

from .terms import compile_terms, find_terms, sorted_terms, term_regex, word_forms  # noqa: F401 (re-exported)

SIMILARITY_FLOOR = 0.6
DEFAULT_THRESHOLD = 0.5


def check_threshold(name, value):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def nearest_concept(prompt_vec, concept_vecs, null_vec=None):
    """(cosine, index) of the concept nearest the prompt, after subtracting null_vec from all."""
    import torch
    p = prompt_vec.detach().float().flatten()
    c = concept_vecs.detach().float().reshape(len(concept_vecs), -1)
    if c.shape[0] == 0:
        raise ValueError("no concept embeddings to compare with")
    if c.shape[1] != p.shape[0]:
        raise ValueError(f"prompt embedding has {p.shape[0]} values but concept embeddings have {c.shape[1]}")
    if null_vec is not None:
        n = null_vec.detach().float().flatten()
        p, c = p - n, c - n
    cos = torch.nn.functional.cosine_similarity(c, p.unsqueeze(0), dim=1, eps=1e-8)
    i = int(torch.argmax(cos))
    return float(cos[i]), i


def similarity_score(similarity, floor=SIMILARITY_FLOOR):
    """Map a cosine to [0, 1]: 0 at or below the floor, 1 at cosine 1."""
    floor = check_threshold("similarity_floor", floor)
    if floor >= 1.0:
        return 0.0
    return min(1.0, max(0.0, (float(similarity) - floor) / (1.0 - floor)))


DETECTORS = ("terms", "terms+similarity", "learned", "all")
# The node's defaults, chosen by the rule in gate_training/default_rule.py (bench/results/gate_default.md):
# the best recall with <= 5 % false alarms on benign art-site prompts and on the hand-written dev set. The
# term part alone fails that bound, so the default is the learned part at a strict threshold (0.742 rounded
# up to the slider's step).
DEFAULT_DETECTOR = "learned"
DEFAULT_NODE_THRESHOLD = 0.75


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict; unpacks as (is_unsafe, score, reason)."""
    is_unsafe: bool
    score: float
    reason: str
    term_score: float = 0.0
    matches: tuple = ()               # ((term, text as written), ...)
    similarity: float | None = None   # centred cosine to the nearest concept, if computed
    similarity_score: float = 0.0
    concept: str | None = None        # the nearest concept, if computed
    learned_score: float = 0.0        # the learned detector's head for this preset, if computed
    categories: tuple = ()            # ((category, score), ...) of the learned detector, highest first

    def __iter__(self):
        return iter((self.is_unsafe, self.score, self.reason))


def learned_text(learned, head, part):
    """'learned: any 0.912 (sexual 0.950, shocking 0.610)': the head used, then the categories at or
    above 0.5 (their own operating points), or the top two when none is."""
    cats = sorted(((h, float(v)) for h, v in learned.items() if h != "any"), key=lambda kv: -kv[1])
    shown = [kv for kv in cats if kv[1] >= 0.5] or cats[:2]
    return (f"learned: {head} {part:.3f}" + (" (categories: " + ", ".join(f"{h} {v:.3f}" for h, v in shown) + ")"
                                             if shown else "")), tuple(cats)


def gate_decision(prompt, unsafe_terms, threshold=DEFAULT_THRESHOLD, similarity=None, concept=None,
                  similarity_floor=SIMILARITY_FLOOR, learned=None, learned_head="any"):
    """The gate's decision from the prompt text and the parts computed for it.
    unsafe_terms: the preset's terms, or None when the term part is off (detector `learned`);
    similarity, concept: the similarity part, if computed; learned: {head: score} from the
    learned detector, if computed, scored on head `learned_head` (the preset's category)."""
    if not isinstance(prompt, str):
        raise ValueError(f"text must be a string, got {type(prompt).__name__}")
    t = check_threshold("threshold", threshold)
    if similarity is not None and not math.isfinite(float(similarity)):
        raise ValueError(f"similarity must be a finite number, got {similarity!r}")
    if learned is not None and learned_head not in learned:
        raise ValueError(f"learned scores have no head {learned_head!r} (heads: {', '.join(learned)})")
    if not prompt.strip():
        return GateDecision(False, 0.0, "empty prompt: nothing to gate")

    matches = tuple(find_terms(prompt, unsafe_terms)) if unsafe_terms is not None else ()
    term_score = 1.0 if matches else 0.0
    sim_score = similarity_score(similarity, similarity_floor) if similarity is not None else 0.0
    part = float(learned[learned_head]) if learned is not None else 0.0
    score = max(term_score, sim_score, part)
    texts = []
    if similarity is not None:
        texts.append(f"similarity {float(similarity):.3f} to concept {concept!r} (part {sim_score:.3f})")
    cats = ()
    if learned is not None:
        text, cats = learned_text(learned, learned_head, part)
        texts.append(text)
    detail = "; ".join(texts)

    if matches:
        found = ", ".join(f"{term!r} (as {text!r})" for term, text in dict(matches).items())
        reason = f"unsafe term: {found}" + (f"; {detail}" if detail else "")
        unsafe = True
    elif t == 0.0:
        reason = "threshold 0: safety applies to every prompt" + (f"; {detail}" if detail else "")
        unsafe = True
    elif score >= t:
        reason = f"{detail} >= threshold {t:.3f}"
        if unsafe_terms is not None:
            reason = "no unsafe term; " + reason
        unsafe = True
    else:
        reason = "; ".join((["no unsafe term"] if unsafe_terms is not None else [])
                           + ([f"{detail} < threshold {t:.3f}"] if detail else []))
        unsafe = False
    return GateDecision(unsafe, score, reason, term_score, matches,
                        None if similarity is None else float(similarity), sim_score, concept, part, cats)
