"""The README is the user's first page: under 300 lines, every relative link it holds points
at a file (and, with `#anchor`, at a heading of that file) in this checkout, and it tells no
project history (that is the changelog's)."""

import re

from ...conftest import REPO

README = REPO / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(markdown: str) -> set[str]:
    """GitHub's and MkDocs' anchors: headings lower-cased, punctuation dropped, spaces to dashes."""
    heads = re.findall(r"^#+\s+(.*)$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_the_readme_is_under_300_lines():
    assert len(README.read_text().splitlines()) < 300


def test_every_relative_link_of_the_readme_resolves():
    broken = []
    for target in LINK.findall(README.read_text()):
        if target.startswith(("http://", "https://", "#")):
            continue
        path, _, anchor = target.partition("#")
        file = REPO / path
        if not file.exists():
            broken.append(target)
        elif anchor and anchor not in _anchors(file.read_text()):
            broken.append(target)
    assert not broken, broken


def test_the_readme_tells_no_history():
    assert not re.findall(r"\bissue \d+", README.read_text(), flags=re.I)
