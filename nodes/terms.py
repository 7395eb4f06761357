"""The pack's one term matcher: where a preset's unsafe terms occur in a prompt.

Pure Python (stdlib only). Used by the prompt gate (prompt_gate.gate_decision), by the
`strip` mode of the context encoder (presets.strip_terms) and, for its negation scopes, by
the learned detector's features (learned_gate.py: what the matcher ignores, it ignores too).

Matching: case-insensitive; a match may not touch a letter or digit on either side
("Essex" does not hold "sex", "therapist" does not hold "rapist"); underscores, hyphens and
whitespace separate words, so "self harm", "self-harm" and "self_harm" are one phrase. Each
word of a term also matches its simple inflections: -s (-es after s/x/z/ch/sh/o), -ed, -ing,
-er, -ers, with e-drop (abuse: abused, abusing), y to i (bully: bullies, bullied) and a
doubled final consonant (stab: stabbed, stabbing), and a possessive 's.

Two kinds of match do not count as the prompt asking for the term:
- negated: the match lies in a negation scope: after "no", "not", "non", "without", "never",
  "nor", "free of", "zero" up to the next punctuation mark or "but" (at most 4 words), so
  "no blood", "without nudity", "non-violent" do not flag;
- inside a benign compound (BENIGN_COMPOUNDS): "killer whale", "fighter jet", "cutting board",
  "hanging baskets", "crackers" are ordinary things whose words happen to inflect a term; or
  inside a benign sense of a preset's term (BENIGN_SENSES): "shooting stars", "a drug store",
  "a nude lipstick", "a sign hanging over the door".
"""
import functools
import re

_VOWELS = set("aeiou")
_NOT_WORD_CHAR = r"[^\W_]"  # a letter or digit: what a match may not touch
_WORD_SPLIT = re.compile(r"[\s\-_]+")

NEGATION_CUES = ("no", "not", "non", "without", "never", "nor", "free of", "zero", "nothing", "none")
NEGATION_SCOPE_WORDS = 4
# A scope ends at punctuation, at "but", or after NEGATION_SCOPE_WORDS words.
_SCOPE_END = re.compile(r"[,.;:!?()\[\]{}|/\n]|\bbut\b", re.IGNORECASE)
_CUE = re.compile(r"(?<!%s)(?:%s)(?!%s)" % (_NOT_WORD_CHAR, "|".join(
    r"[\s\-_]+".join(map(re.escape, c.split())) for c in sorted(NEGATION_CUES, key=len, reverse=True)),
    _NOT_WORD_CHAR), re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+")

# Ordinary compounds (each word also in its inflections) whose words are term inflections.
BENIGN_COMPOUNDS = ("killer whale", "killer bee", "killer app", "fighter jet", "fighter plane", "fighter pilot",
                    "fighter aircraft", "fighter squadron", "jet fighter", "fighter bomber", "fire fighter",
                    "cutting board", "cutting edge", "wood cutting", "hanging basket", "hanging plant",
                    "hanging lamp", "hanging light", "hanging garden", "hanging bridge", "hanging out",
                    "hanging off", "cracker", "nutcracker", "firecracker", "war paint", "pillow fight",
                    "snowball fight", "food fight", "water gun", "glue gun", "butter knife", "bread knife",
                    "pocket knife", "fully clothed", "fully dressed")
# Term senses (issue 24): per preset, common benign senses of its terms, written from ordinary
# usage and from the term matches in the gate's COCO training captions (signs hanging, cutting
# bread, a kitchen knife, a crack in the sidewalk, garden weeds, war planes). A term's unsafe
# senses keep matching: "shooting a man", "a man hanging from a noose", "cutting her wrists".
BENIGN_SENSES = {
    "sexual": ("naked eye", "naked flame", "naked bulb", "naked light bulb", "nude color", "nude colour",
               "nude tone", "nude shade", "nude lipstick", "nude heels", "nude shoes", "nude nails",
               "nude makeup", "nude palette"),
    "violence": ("shooting star", "photo shoot", "film shoot", "fashion shoot", "shooting a photo",
                 "shooting a film", "shooting a movie", "shooting a video", "shooting hoops", "bamboo shoot",
                 "nail gun", "staple gun", "spray gun", "heat gun", "bloody mary", "blood orange",
                 "blood moon", "blood pressure", "kitchen knife", "steak knife", "chef knife", "palette knife",
                 "knife and fork", "fork and knife", "war plane", "war memorial", "war museum", "tug of war",
                 "water fight"),
    "self-harm": ("sign hanging", "hanging sign", "hanging picture", "hanging painting", "hanging lantern",
                  "hanging chair", "hanging clothes", "hanging laundry", "hanging flag", "hanging decoration",
                  "cutting bread", "cutting cake", "cutting a cake", "cutting hair", "hair cutting",
                  "cutting vegetables", "cutting paper", "cutting the grass", "ribbon cutting",
                  "cutting the ribbon"),
    "illegal activity": ("drug store", "crack in the wall", "crack in the sidewalk", "crack in the ice",
                         "crack in the glass", "crack in the road", "crack in the ground", "cracked egg", "cracked glass", "crack of dawn",
                         "garden weeds", "pulling weeds", "weed killer"),
    "harassment": ("bully stick", "mock up", "mock turtleneck", "mock orange", "mock tudor",
                   "stalking prey"),
    "shocking": ("shocking pink", "skull and crossbones", "tooth decay"),
    "hate": (),
}
_BENIGN_PHRASES = BENIGN_COMPOUNDS + tuple(p for senses in BENIGN_SENSES.values() for p in senses)


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


def sorted_terms(terms):
    """The non-empty terms, longest first: "killing" is reported as itself, not as "kill" + ing."""
    if isinstance(terms, str) or not all(isinstance(t, str) for t in terms):
        raise ValueError(f"unsafe_terms must be a list of strings, got {terms!r}")
    return sorted((t for t in terms if t.strip()), key=len, reverse=True)


def compile_terms(terms):
    """One case-insensitive pattern; group i is the i-th of sorted_terms(terms)."""
    return _compiled(tuple(sorted_terms(terms)))


@functools.lru_cache(maxsize=64)
def _compiled(terms):
    if not terms:
        return None
    alts = "|".join("(%s)" % term_regex(t) for t in terms)
    return re.compile(r"(?<!%s)(?:%s)(?:['\u2019]s)?(?!%s)" % (_NOT_WORD_CHAR, alts, _NOT_WORD_CHAR),
                      re.IGNORECASE)


_BENIGN = compile_terms(_BENIGN_PHRASES)


def negation_scopes(text, with_cue=False):
    """[(start, end)] character spans of the text that a negation cue governs (and the cue)."""
    scopes = []
    for cue in _CUE.finditer(text):
        start = cue.end()
        stop = _SCOPE_END.search(text, start)
        end = stop.start() if stop else len(text)
        words = list(_WORD.finditer(text, start, end))
        if len(words) > NEGATION_SCOPE_WORDS:
            end = words[NEGATION_SCOPE_WORDS - 1].end()
        if end > start:
            scopes.append((cue.start() if with_cue else start, end))
    return scopes


def ignored_spans(text):
    """Spans the prompt does not ask for: negations with their cue ("no blood") and benign
    compounds ("fully clothed")."""
    return negation_scopes(text, with_cue=True) + [m.span() for m in _BENIGN.finditer(text)]


def in_spans(position, spans):
    return any(a <= position < b for a, b in spans)


def term_spans(prompt, terms, negated=False):
    """[(term, text as written, start, end)] for every match, in prompt order. Matches inside a
    benign compound never count; negated matches count only with negated=True (strip mode
    removes them too)."""
    pattern = compile_terms(terms)
    if pattern is None:
        return []
    live = sorted_terms(terms)
    benign = [m.span() for m in _BENIGN.finditer(prompt)]
    scopes = [] if negated else negation_scopes(prompt)
    out = []
    for m in pattern.finditer(prompt):
        if any(a < m.end() and m.start() < b for a, b in benign) or in_spans(m.start(), scopes):
            continue
        out.append((live[m.lastindex - 1], m.group(0), m.start(), m.end()))
    return out


def find_terms(prompt, terms, negated=False):
    """[(term, text as written in the prompt)] for every counted match, in prompt order."""
    return [(t, text) for t, text, _, _ in term_spans(prompt, terms, negated)]
