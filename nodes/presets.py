"""Safety-context presets: small JSON files, loaded and composed with pure Python.

A preset file holds: name, description, context (the safe context text), unsafe_terms
(words and phrases it covers) and optionally negative (a negative-prompt text). Files
are read from the pack's `safety_contexts/` and then from user folders, so users add
presets without editing the pack; a later file with the same name overrides an earlier
one. A malformed file is reported by path and line and skipped: it never stops the
other presets, or the host, from loading.
"""
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .terms import term_spans

MODES = ("append", "strip", "replace")
REQUIRED = {"name": str, "description": str, "context": str, "unsafe_terms": list}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    context: str
    unsafe_terms: tuple
    negative: str = ""
    path: str = field(default="", compare=False)


def parse_preset(text, path="<preset>"):
    """Parse and validate one preset file; errors say where (path:line) and what."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}:1: expected a JSON object with {sorted(REQUIRED)}")

    def line_of(key):
        m = re.search(r'"%s"\s*:' % re.escape(key), text)
        return text.count("\n", 0, m.start()) + 1 if m else 1

    for key, typ in REQUIRED.items():
        if key not in data:
            raise ValueError(f"{path}:1: missing key {key!r}")
        if not isinstance(data[key], typ):
            raise ValueError(f"{path}:{line_of(key)}: {key!r} must be a {typ.__name__}")
    if not data["name"].strip():
        raise ValueError(f"{path}:{line_of('name')}: 'name' is empty")
    terms = data["unsafe_terms"]
    if not all(isinstance(t, str) and t.strip() for t in terms):
        raise ValueError(f"{path}:{line_of('unsafe_terms')}: 'unsafe_terms' must be non-empty strings")
    negative = data.get("negative", "")
    if not isinstance(negative, str):
        raise ValueError(f"{path}:{line_of('negative')}: 'negative' must be a string")
    return Preset(data["name"].strip(), data["description"], data["context"].strip(),
                  tuple(t.strip() for t in terms), negative, str(path))


def load_presets(directories):
    """(presets by name, error messages) from every *.json in the folders, in order."""
    presets, errors = {}, []
    for d in directories:
        d = Path(d)
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.json")):
            try:
                p = parse_preset(f.read_text(encoding="utf-8"), f)
            except (OSError, UnicodeDecodeError) as e:
                errors.append(f"{f}: cannot read: {e}")
                continue
            except ValueError as e:
                errors.append(str(e))
                continue
            presets[p.name] = p
    return presets, errors


def strip_terms(text, terms):
    """The text with the terms removed and the leftover punctuation tidied."""
    out, last = [], 0
    for _, _, start, end in term_spans(text, terms, negated=True):  # the gate's matcher, negated matches too
        out.append(text[last:start] + " ")
        last = end
    out = "".join(out) + text[last:]
    out = re.sub(r"\s+([,.;:!?])", r"\1", out)         # no space before punctuation
    out = re.sub(r"([,;:])(\s*[,;:])+", r"\1", out)      # collapse runs of separators
    out = re.sub(r"\s+", " ", out).strip()
    return out.strip(" ,;:")


def compose_safe_text(prompt, preset, mode, extra_context=""):
    """The text encoded as the safety context, per METHOD.md: append, strip or replace."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    context = ", ".join(t for t in (preset.context.strip(), (extra_context or "").strip()) if t)
    if mode == "replace":
        if not context:
            raise ValueError(f"replace mode needs a context: preset {preset.name!r} and extra_context are both empty")
        return context
    base = prompt.strip() if mode == "append" else strip_terms(prompt, preset.unsafe_terms)
    return ", ".join(t for t in (base, context) if t)
