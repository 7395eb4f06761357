"""What the constructed text encoder says about meaning: measured, not assumed.

`encode(text)` is any function returning the (77, 768) conditioning the UNet sees (the
host's CLIPTextEncode path, or build.encode_captions' closed form). Pure torch otherwise.
"""
import torch

from .scenes import CONCEPTS
from .vocab import WORD_FEATURES

PHRASE = {c: v[2][0] for c, v in CONCEPTS.items()}


def cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


def concept_vector(encode, n_tokens, concept):
    """Mean of the rows of the concept's content-word tokens (words with features, not "a" or
    "of"), its phrase encoded alone."""
    text = PHRASE[concept]
    rows, at = [], 1                       # row 0 is the start token
    for word in text.split():
        n = n_tokens(word)
        if WORD_FEATURES.get(word):
            rows.extend(range(at, at + n))
        at += n
    return encode(text)[rows].mean(0)


def concept_cosines(encode, n_tokens, concept, others=None):
    """{other concept: cosine between the two concept vectors}. n_tokens(text): the number of
    word tokens the host's tokenizer makes of the text."""
    others = others or [c for c in CONCEPTS if c != concept]
    ref = concept_vector(encode, n_tokens, concept)
    return {o: cosine(ref, concept_vector(encode, n_tokens, o)) for o in others}


def spill(encode, text, word, neutral="the"):
    """Share of the change that `word` makes to the encoding that lands on rows other than its
    own: text against text with `word` replaced by a neutral word of one token."""
    a, b = encode(text), encode(text.replace(word, neutral, 1))
    diff = (a - b).double().pow(2).sum(-1)            # per row
    own = diff.argmax()                               # the replaced word's own row changes most
    total = float(diff.sum())
    return (total - float(diff[own])) / total if total else 0.0
