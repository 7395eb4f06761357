"""The user documents (issue #25): the README stays short, no figure of the old README was lost in
the move to docs/, and every relative link in the README and docs/ resolves (file and heading)."""
import os
import re

from pack_import import PACK_DIR

DOCS = [PACK_DIR / "README.md", *sorted((PACK_DIR / "docs").glob("*.md"))]
FIGURES = PACK_DIR / "tests" / "data" / "readme_figures_before_issue25.txt"


def anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
            for line in path.read_text().splitlines() if line.startswith("#")}


def test_the_readme_is_for_users_and_short():
    lines = (PACK_DIR / "README.md").read_text().splitlines()
    assert len(lines) <= 250, len(lines)
    text = "\n".join(lines)
    for needed in ("make demo", "make test", "## Install", "## Quick start", "## What it cannot do",
                   "docs/TROUBLESHOOTING.md", "docs/MEASUREMENTS.md", "docs/METHOD.md"):
        assert needed in text, needed


def test_no_figure_of_the_old_readme_was_lost():
    text = "\n".join(p.read_text() for p in DOCS)
    lines = [f for f in FIGURES.read_text().splitlines() if f and not f.startswith("#")]
    figures = [f for f in lines if not f.startswith("dropped:")]
    dropped = [f for f in lines if f.startswith("dropped:")]
    assert len(figures) > 80 and all(" | " in d for d in dropped)   # each dropped figure gives its reason
    assert [f for f in figures if f not in text] == []


def test_every_relative_link_resolves():
    broken = []
    for doc in DOCS:
        for link in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", link):
                continue
            path, _, anchor = link.partition("#")
            target = (doc.parent / path).resolve() if path else doc
            if not os.path.exists(target):
                broken.append((doc.name, link))
            elif anchor and target.suffix == ".md" and anchor not in anchors(target):
                broken.append((doc.name, link))
    assert broken == []
