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

Term matching: case-insensitive; a match may not touch a letter or digit on either side
("Essex" does not hold "sex", "therapist" does not hold "rapist"); underscores, hyphens and
whitespace separate words, so "self harm", "self-harm" and "self_harm" are one phrase. Each
word of a term also matches its simple inflections: -s (-es after s/x/z/ch/sh/o), -ed, -ing,
-er, -ers, with e-drop (abuse: abused, abusing), y to i (bully: bullies, bullied) and a
doubled final consonant (stab: stabbed, stabbing), and a possessive 's.
"""
import math
import re
from dataclasses import dataclass

SIMILARITY_FLOOR = 0.6
DEFAULT_THRESHOLD = 0.5

_VOWELS = set("aeiou")
_NOT_WORD_CHAR = r"[^\W_]"  # a letter or digit: what a match may not touch
_WORD_SPLIT = re.compile(r"[\s\-_]+")


def word_forms(word):
    """The word and its simple inflections, lower case."""
    w = word.lower()
    if not w.isalpha():
        return {w}
    forms = {w, w + "s", w + "ed", w + "ing", w + "er", w + "ers"}
    if w.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms.add(w + "es")
    if w.endswith("e"):
        forms |= {w + "d", w + "r", w + "rs", w[:-1] + "ing"}
    if len(w) > 2 and w.endswith("y") and w[-2] not in _VOWELS:
        forms |= {w[:-1] + "ies", w[:-1] + "ied", w[:-1] + "ier"}
    if (len(w) > 2 and w[-1] not in _VOWELS and w[-1] not in "wxy"
            and w[-2] in _VOWELS and w[-3] not in _VOWELS):
        forms |= {w + w[-1] + s for s in ("ed", "ing", "er", "ers")}
    return forms


def term_regex(term):
    """Regex source for one term: each word with its inflections, any separator between words."""
    words = [w for w in _WORD_SPLIT.split(term.strip()) if w]
    if not words:
        raise ValueError(f"unsafe term {term!r} is empty")
    parts = ["(?:%s)" % "|".join(re.escape(f) for f in sorted(word_forms(w), key=len, reverse=True))
             for w in words]
    return r"[\s\-_]+".join(parts)


def compile_terms(terms):
    """One case-insensitive pattern; group i is the i-th of the terms, longest first."""
    terms = sorted_terms(terms)
    if not terms:
        return None
    alts = "|".join("(%s)" % term_regex(t) for t in terms)
    return re.compile(r"(?<!%s)(?:%s)(?:['\u2019]s)?(?!%s)" % (_NOT_WORD_CHAR, alts, _NOT_WORD_CHAR),
                      re.IGNORECASE)


def sorted_terms(terms):
    """The non-empty terms, longest first: "killing" is reported as itself, not as "kill" + ing."""
    if isinstance(terms, str) or not all(isinstance(t, str) for t in terms):
        raise ValueError(f"unsafe_terms must be a list of strings, got {terms!r}")
    return sorted((t for t in terms if t.strip()), key=len, reverse=True)


def find_terms(prompt, terms):
    """[(term, text as written in the prompt)] for every match, in prompt order."""
    pattern = compile_terms(terms)
    if pattern is None:
        return []
    live = sorted_terms(terms)
    return [(live[m.lastindex - 1], m.group(0)) for m in pattern.finditer(prompt)]


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

    def __iter__(self):
        return iter((self.is_unsafe, self.score, self.reason))


def gate_decision(prompt, unsafe_terms, threshold=DEFAULT_THRESHOLD, similarity=None, concept=None,
                  similarity_floor=SIMILARITY_FLOOR):
    """The gate's decision from the prompt text and, optionally, its similarity to the concepts."""
    if not isinstance(prompt, str):
        raise ValueError(f"text must be a string, got {type(prompt).__name__}")
    t = check_threshold("threshold", threshold)
    if similarity is not None and not math.isfinite(float(similarity)):
        raise ValueError(f"similarity must be a finite number, got {similarity!r}")
    if not prompt.strip():
        return GateDecision(False, 0.0, "empty prompt: nothing to gate")

    matches = tuple(find_terms(prompt, unsafe_terms))
    term_score = 1.0 if matches else 0.0
    sim_score = similarity_score(similarity, similarity_floor) if similarity is not None else 0.0
    score = max(term_score, sim_score)
    sim_text = ("" if similarity is None else
                f"similarity {float(similarity):.3f} to concept {concept!r} (part {sim_score:.3f})")

    if matches:
        found = ", ".join(f"{term!r} (as {text!r})" for term, text in dict(matches).items())
        reason = f"unsafe term: {found}" + (f"; {sim_text}" if sim_text else "")
        unsafe = True
    elif t == 0.0:
        reason = "threshold 0: safety applies to every prompt" + (f"; {sim_text}" if sim_text else "")
        unsafe = True
    elif score >= t:
        reason = f"{sim_text} >= threshold {t:.3f}"
        unsafe = True
    else:
        reason = "no unsafe term" + (f"; {sim_text} < threshold {t:.3f}" if sim_text else "")
        unsafe = False
    return GateDecision(unsafe, score, reason, term_score, matches,
                        None if similarity is None else float(similarity), sim_score, concept)
